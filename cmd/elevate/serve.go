package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/server"
	"github.com/elevate-pam/elevate/store"
)

const serveUsage = `Usage: elevate serve [--data DIR] [--addr HOST:PORT]

Serves the HTTP API on the data directory (created when missing), sweeps
expired grants and stale requests every minute, and stops gracefully on
SIGINT or SIGTERM, finishing the requests in flight. Today the API has the
agent endpoint POST /api/v1/agents/:id/elevation-requests (a device's agent
token as its bearer token; "elevate device add" makes one), the request
lists and transitions under /api/v1/pam (a user's JWT; "elevate token"
mints one), /healthz and /readyz.

Flags:
`

// runServe runs the server until ctx ends (a signal, or a test). ready, if
// not nil, receives the address listened on.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- string) int {
	fs := newFlags("serve", serveUsage, stderr)
	dir := fs.String("data", "data", "the data directory")
	addr := fs.String("addr", ":8080", "the address to listen on")
	sweep := fs.Duration("sweep-every", time.Minute, "how often expired grants and stale requests are swept")
	secretFile := fs.String("jwt-secret-file", "", "file holding the HS256 secret of users' tokens (default: $ELEVATE_JWT_SECRET, else DIR/jwt-secret, made on first start)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	st, code := openData("serve", *dir, false, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	secret, made, err := jwtSecret(*dir, *secretFile)
	if err != nil {
		fmt.Fprintf(stderr, "elevate serve: %v\n", err)
		return exitInternal
	}
	if made {
		log.Info("made a development signing secret for user tokens; mint one with: elevate token --data " + *dir + " --org ORG-ID")
	}
	lc := lifecycle.New(lifecycle.Config{Store: st})
	srv := &http.Server{
		Handler:           server.New(server.Config{Lifecycle: lc, Logger: log, JWTSecret: secret}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "elevate serve: %v\n", err)
		return exitInternal
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go lc.RunSweeper(ctx, *sweep, func(err error) { log.Error("sweep", "error", err.Error()) })
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "data", st.Dir())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "elevate serve: %v\n", err)
		return exitInternal
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "elevate serve: shutdown: %v\n", err)
		return exitInternal
	}
	log.Info("stopped")
	return exitOK
}

const deviceUsage = `Usage: elevate device add --data DIR --org ORG --hostname NAME

Registers a device and prints its agent token, once: the store keeps only
its SHA-256. ORG is an organisation id or name; a name not yet known
creates the organisation.

Flags:
`

func runDevice(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprint(stderr, deviceUsage)
		return exitUsage
	}
	fs := newFlags("device add", deviceUsage, stderr)
	dir := fs.String("data", "data", "the data directory")
	orgArg := fs.String("org", "", "organisation id or name")
	host := fs.String("hostname", "", "the device's host name")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() != 0 || strings.TrimSpace(*orgArg) == "" || strings.TrimSpace(*host) == "" {
		fs.Usage()
		return exitUsage
	}
	st, code := openData("device add", *dir, false, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	var tok [24]byte
	rand.Read(tok[:])
	token := base64.RawURLEncoding.EncodeToString(tok[:])
	now := time.Now().UTC()
	dev := &store.Device{ID: store.NewID(now), Hostname: *host, TokenHash: store.TokenHash(token), CreatedAt: now}
	err := st.Update(func(tx *store.Tx) error {
		org, err := findOrCreateOrg(tx, *orgArg, now)
		if err != nil {
			return err
		}
		dev.OrgID = org
		return tx.PutDevice(dev)
	})
	if err != nil {
		fmt.Fprintf(stderr, "elevate device add: %v\n", err)
		return exitInternal
	}
	enc := json.NewEncoder(stdout)
	enc.Encode(map[string]string{"deviceId": dev.ID, "orgId": dev.OrgID, "token": token})
	return exitOK
}

// findOrCreateOrg resolves an organisation by id or by name, creating one
// with that name when none has it.
func findOrCreateOrg(tx *store.Tx, arg string, now time.Time) (string, error) {
	if _, err := store.ParseID(arg); err == nil {
		o, err := tx.Org(arg)
		if err != nil {
			return "", fmt.Errorf("organisation %s: %w", arg, err)
		}
		return o.ID, nil
	}
	orgs, err := tx.Orgs()
	if err != nil {
		return "", err
	}
	var found []string
	for _, o := range orgs {
		if strings.EqualFold(o.Name, arg) {
			found = append(found, o.ID)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		o := &store.Org{ID: store.NewID(now), Name: arg, CreatedAt: now}
		return o.ID, tx.PutOrg(o)
	}
	return "", fmt.Errorf("%d organisations are named %q: give the id", len(found), arg)
}

// jwtSecret finds the HS256 secret of user tokens: the named file, else
// $ELEVATE_JWT_SECRET, else DIR/jwt-secret, which is made (32 random
// bytes, readable by the owner only) when missing; made says so.
func jwtSecret(dir, file string) (secret []byte, made bool, err error) {
	if file != "" {
		b, err := os.ReadFile(file)
		return bytes.TrimSpace(b), false, err
	}
	if env := os.Getenv("ELEVATE_JWT_SECRET"); env != "" {
		return []byte(env), false, nil
	}
	path := filepath.Join(dir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil {
		return bytes.TrimSpace(b), false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	var raw [32]byte
	rand.Read(raw[:])
	secret = []byte(base64.RawURLEncoding.EncodeToString(raw[:]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	return secret, true, os.WriteFile(path, secret, 0o600)
}

const tokenUsage = `Usage: elevate token --data DIR --org ORG-ID [flags]

Prints a user token signed with the server's secret (as "elevate serve"
finds it), for development and tests. Claims: sub, name, scope, org_id or
partner_id, permissions, amr (["mfa"] unless --mfa=false), site_ids, exp.

Flags:
`

func runToken(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("token", tokenUsage, stderr)
	dir := fs.String("data", "data", "the data directory (where the secret is)")
	secretFile := fs.String("jwt-secret-file", "", "file holding the secret, as for serve")
	org := fs.String("org", "", "organisation id (organization scope)")
	partner := fs.String("partner", "", "partner id (partner scope)")
	scope := fs.String("scope", "", "organization, partner or system (default: from --org or --partner)")
	perms := fs.String("perm", "devices:read,devices:write,devices:execute", "comma-separated permissions")
	mfa := fs.Bool("mfa", true, "the session passed MFA")
	sub := fs.String("sub", "admin", "subject (user id)")
	name := fs.String("name", "Administrator", "display name")
	sites := fs.String("sites", "", "comma-separated site ids the user is restricted to")
	ttl := fs.Duration("ttl", 8*time.Hour, "lifetime")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *scope == "" {
		switch {
		case *org != "":
			*scope = server.ScopeOrganization
		case *partner != "":
			*scope = server.ScopePartner
		default:
			*scope = server.ScopeSystem
		}
	}
	if fs.NArg() != 0 || *scope == server.ScopeOrganization && *org == "" {
		fs.Usage()
		return exitUsage
	}
	secret, _, err := jwtSecret(*dir, *secretFile)
	if err != nil {
		fmt.Fprintf(stderr, "elevate token: %v\n", err)
		return exitInternal
	}
	now := time.Now()
	c := server.Claims{Name: *name, Scope: *scope, OrgID: *org, PartnerID: *partner, Permissions: splitList(*perms)}
	c.Subject, c.IssuedAt, c.ExpiresAt = *sub, jwt.NewNumericDate(now), jwt.NewNumericDate(now.Add(*ttl))
	if *mfa {
		c.AMR = []string{"mfa"}
	}
	if *sites != "" {
		c.SiteIDs, c.SitesRestricted = splitList(*sites), true
	}
	tok, err := server.MintToken(secret, c)
	if err != nil {
		fmt.Fprintf(stderr, "elevate token: %v\n", err)
		return exitInternal
	}
	fmt.Fprintln(stdout, tok)
	return exitOK
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
