package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
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

const serveUsage = `Usage: elevate serve [flags]

Serves the HTTP API over the data directory (created when missing): the
agent endpoint, the PAM control plane, inventory administration, /healthz,
/readyz, /metrics and /openapi.json. Rules come from the rule directory
(reloaded when its files change; a broken edit keeps the last good set)
merged with the rules managed over the API. Expired grants and stale
requests are swept every minute. SIGINT or SIGTERM stops the server after
the requests in flight finish.

Every flag can also be set by an environment variable: ELEVATE_ and the
flag's name in capitals with - as _ (ELEVATE_ADDR, ELEVATE_TLS_CERT, …);
a flag on the command line wins.

Flags:
`

// serveConfig is what runServe was asked for.
type serveConfig struct {
	dir, addr, secretFile, rulesDir string
	sweep, reload, reqTimeout       time.Duration
	fakeClock                       bool
	fakeStart                       string
	tlsCert, tlsKey                 string
	corsOrigins, corsHeaders        string
	corsCredentials                 bool
	disable                         string
	logLevel                        string
	previewMaxScan                  int
	historyFromStore                bool
	jwksFile, jwksURL               string
	issuer, audience                string
}

// runServe runs the server until ctx ends (a signal, or a test). ready, if
// not nil, receives the address listened on.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- string) int {
	fs := newFlags("serve", serveUsage, stderr)
	var sc serveConfig
	fs.StringVar(&sc.dir, "data", "data", "the data directory")
	fs.StringVar(&sc.addr, "addr", ":8080", "the address to listen on")
	fs.DurationVar(&sc.sweep, "sweep-every", time.Minute, "how often expired grants and stale requests are swept")
	fs.StringVar(&sc.secretFile, "jwt-secret-file", "", "file holding the HS256 secret of users' tokens (default: $ELEVATE_JWT_SECRET, else DIR/jwt-secret, made on first start)")
	fs.StringVar(&sc.jwksFile, "jwks-file", "", "JSON Web Key Set file whose RS256/ES256 keys verify users' tokens")
	fs.StringVar(&sc.jwksURL, "jwks-url", "", "JSON Web Key Set URL whose RS256/ES256 keys verify users' tokens")
	fs.StringVar(&sc.issuer, "jwt-issuer", "", "when set, users' tokens must carry this iss")
	fs.StringVar(&sc.audience, "jwt-audience", "", "when set, users' tokens must carry this aud")
	fs.StringVar(&sc.rulesDir, "rules", "rules", `the rule-file directory served beside the API's rules ("" for none)`)
	fs.DurationVar(&sc.reload, "rules-reload-every", 2*time.Second, "how often the rule files are checked for changes")
	fs.DurationVar(&sc.reqTimeout, "request-timeout", server.DefaultRequestTimeout, "requests running longer end with 408")
	fs.BoolVar(&sc.fakeClock, "fake-clock", false, "run on a clock a system-scope caller sets with PUT /api/v1/debug/clock (tests, demos)")
	fs.StringVar(&sc.fakeStart, "fake-clock-start", "", "the fake clock's first reading (RFC 3339; default: now)")
	fs.StringVar(&sc.tlsCert, "tls-cert", "", "certificate file (PEM): serve HTTPS")
	fs.StringVar(&sc.tlsKey, "tls-key", "", "private key file (PEM) of --tls-cert")
	fs.StringVar(&sc.corsOrigins, "cors-origins", "", "comma-separated origins allowed to call the API from a browser (* for any, without credentials)")
	fs.StringVar(&sc.corsHeaders, "cors-headers", "", "comma-separated request headers allowed cross-origin (default Authorization, Content-Type, X-API-Key)")
	fs.BoolVar(&sc.corsCredentials, "cors-credentials", false, "allow cross-origin requests with credentials")
	fs.StringVar(&sc.disable, "disable", "", "comma-separated API surfaces to switch off (they answer 404): agent, pam, inventory, metrics, openapi")
	fs.StringVar(&sc.logLevel, "log-level", "info", "debug, info, warn or error (changeable at run time over PUT /api/v1/system/log-level)")
	fs.IntVar(&sc.previewMaxScan, "preview-max-scan", 0, "the most requests a rule preview reads (default 1000000; 5000 is Breeze's)")
	fs.BoolVar(&sc.historyFromStore, "history-from-store", false,
		"previews and simulations scan the store each time instead of a projection held in memory (about 100 bytes per request)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	if err := flagsFromEnv(fs, os.Getenv); err != nil {
		fmt.Fprintf(stderr, "elevate serve: %v\n", err)
		return exitUsage
	}
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(sc.logLevel)); err != nil {
		fmt.Fprintf(stderr, "elevate serve: --log-level: %v\n", err)
		return exitUsage
	}
	if (sc.tlsCert == "") != (sc.tlsKey == "") {
		fmt.Fprintln(stderr, "elevate serve: --tls-cert and --tls-key go together")
		return exitUsage
	}
	conf := server.Config{Logger: slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})), LogLevel: level,
		RequestTimeout: sc.reqTimeout, PreviewMaxScan: sc.previewMaxScan,
		HistoryFromStore: sc.historyFromStore,
		Auth:             server.AuthConfig{JWKSFile: sc.jwksFile, JWKSURL: sc.jwksURL, Issuer: sc.issuer, Audience: sc.audience}}
	log := conf.Logger
	if sc.disable != "" {
		conf.Surfaces = map[string]bool{}
		for _, name := range splitList(sc.disable) {
			switch name {
			case server.SurfaceAgent, server.SurfacePAM, server.SurfaceInventory, server.SurfaceMetrics, server.SurfaceOpenAPI:
				conf.Surfaces[name] = false
			default:
				fmt.Fprintf(stderr, "elevate serve: --disable: unknown surface %q\n", name)
				return exitUsage
			}
		}
	}
	if sc.corsOrigins != "" {
		conf.CORS = &server.CORSConfig{AllowedOrigins: splitList(sc.corsOrigins), AllowedHeaders: splitList(sc.corsHeaders),
			AllowCredentials: sc.corsCredentials}
		if err := conf.CORS.Validate(); err != nil {
			fmt.Fprintf(stderr, "elevate serve: %v\n", err)
			return exitUsage
		}
	}
	var clock lifecycle.Clock
	if sc.fakeClock {
		start := time.Now().UTC()
		if sc.fakeStart != "" {
			t, err := time.Parse(time.RFC3339Nano, sc.fakeStart)
			if err != nil {
				fmt.Fprintf(stderr, "elevate serve: --fake-clock-start: %v\n", err)
				return exitUsage
			}
			start = t
		}
		conf.FakeClock = lifecycle.NewFakeClock(start)
		clock = conf.FakeClock
		log.Warn("running on a fake clock that system-scope callers can set; not for production")
	}
	if sc.rulesDir != "" {
		if st, err := os.Stat(sc.rulesDir); err == nil && st.IsDir() {
			conf.RulesDir = sc.rulesDir
		} else if isSet(fs, "rules") {
			fmt.Fprintf(stderr, "elevate serve: --rules: %s is not a directory\n", sc.rulesDir)
			return exitUsage
		} else {
			log.Info("no rule directory; serving the API's rules only", "dir", sc.rulesDir)
		}
	}

	st, code := openData("serve", sc.dir, false, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	secret, made, err := jwtSecret(sc.dir, sc.secretFile)
	if err != nil {
		fmt.Fprintf(stderr, "elevate serve: %v\n", err)
		return exitInternal
	}
	if made {
		log.Info("made a development signing secret for user tokens; mint one with: elevate token --data " + sc.dir + " --org ORG-ID")
	}
	conf.JWTSecret = secret
	conf.Lifecycle = lifecycle.New(lifecycle.Config{Store: st, Clock: clock})
	api, err := server.NewChecked(conf)
	if err != nil {
		fmt.Fprintf(stderr, "elevate serve: %v\n", err)
		return exitUsage
	}
	if err := api.LoadRuleFiles(); err != nil {
		fmt.Fprintf(stderr, "elevate serve: the rule files in %s do not load, so the server does not start:\n%v\n", sc.rulesDir, err)
		return exitCompile
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      sc.reqTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", sc.addr)
	if err != nil {
		fmt.Fprintf(stderr, "elevate serve: %v\n", err)
		return exitInternal
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go conf.Lifecycle.RunSweeper(ctx, sc.sweep, func(err error) { log.Error("sweep", "error", err.Error()) })
	go api.WatchRuleFiles(ctx, sc.reload)
	errc := make(chan error, 1)
	go func() {
		if sc.tlsCert != "" {
			errc <- srv.ServeTLS(ln, sc.tlsCert, sc.tlsKey)
			return
		}
		errc <- srv.Serve(ln)
	}()
	log.Info("serving", "addr", ln.Addr().String(), "tls", sc.tlsCert != "", "data", st.Dir(), "rules", conf.RulesDir)
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

// flagsFromEnv sets each flag not given on the command line from
// ELEVATE_<NAME> when that variable is set.
func flagsFromEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || isSet(fs, f.Name) {
			return
		}
		name := "ELEVATE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %v", name, e)
			}
		}
	})
	return err
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
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
