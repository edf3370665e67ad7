// Command elevate is Elevate's one binary: the decision engine's and the
// rule language's command line today, and the server and simulator as they
// land.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
)

// Exit codes shared by the subcommands.
const (
	exitOK       = 0
	exitInternal = 1
	exitUsage    = 2
)

const usage = `elevate — privileged-access decisions from rules you can review

Usage:
  elevate serve [--data DIR] [--addr HOST:PORT]  serve the HTTP API (data in ./data, port 8080 by default)
  elevate device add --data DIR --org ORG --hostname NAME
                                                 register a device and print its agent token
  elevate token --data DIR --org ORG-ID [--perm P,...] [--sites S,...]
                                                 mint a user token for the API (development)
  elevate check [--format json] [--run RE] [--strict] DIR
                                                 compile, lint and test a policy repository (.pam files)
  elevate fmt [-w | -l | -d] PATHS               print .pam files in the canonical layout
  elevate export --to pam|json PATH              convert API rule JSON to .pam text and back
  elevate export --data DIR [--org ORG] [--from T] [--to T] [--all | --rules --signer-groups
         --inventory --policies] [--no-requests]
                                                 write stored state as JSON Lines (default: requests)
  elevate import --data DIR [--dry-run] [FILE]   load JSON Lines into a data directory, all or nothing
  elevate audit verify --data DIR [--anchor FILE]
                                                 check every organisation's audit chain
  elevate audit head --data DIR                  print each chain's head, to keep elsewhere as an anchor
  elevate simulate [--rules DIR] [--base DIR|REV] (--data DIR | --history FILE) [--fail-on widen]
                                                 replay history through a rule set, or compare two
  elevate preview --data DIR [--org ORG] (--rule FILE.pam | --json FILE) [--window-days N]
         [--flow F] [--site ID] [--now T] [--max-scan N] [--format json]
                                                 try one draft rule against stored history
  elevate decide [--explain] [--rules DIR] [FILE]
                                                 decide one request (JSON from FILE or stdin)
  elevate resolve --rules DIR --device FILE.json [--feature pam|software_policy|all]
         [--explain] [--format text|json]
                                                 which policies of a repository set a device's
                                                 features, and the effective settings
  elevate version                                print the version
  elevate help                                   this text

Run "elevate COMMAND -h" for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a subcommand; it is main without the process around it, so
// tests drive the real command line.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "decide":
		return runDecide(args[1:], stdin, stdout, stderr)
	case "resolve":
		return runResolve(args[1:], stdin, stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "fmt":
		return runFmt(args[1:], stdout, stderr)
	case "export":
		return runExport(args[1:], stdout, stderr)
	case "serve":
		return runServe(context.Background(), args[1:], stdout, stderr, nil)
	case "device":
		return runDevice(args[1:], stdout, stderr)
	case "token":
		return runToken(args[1:], stdout, stderr)
	case "import":
		return runImport(args[1:], stdin, stdout, stderr)
	case "audit":
		return runAudit(args[1:], stdout, stderr)
	case "simulate":
		return runSimulate(args[1:], stdin, stdout, stderr)
	case "preview":
		return runPreview(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "elevate", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "elevate: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}
