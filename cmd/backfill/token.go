package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"fmt"
	"time"

	"github.com/symbolsync/backfill/server"
)

//go:embed sql/ensure_user.sql
var ensureUserSQL string

const devDatabaseURL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"

func runToken(ctx context.Context, e *env, args []string) error {
	var (
		role, userID, secret, issuer, dbURL string
		ttl                                 time.Duration
	)
	f := newFlags(e, "token", "--role anon|authenticated|service_role [--user UUID]",
		"Print a signed HS256 token for development. For --role authenticated the user is created in\n"+
			"auth.users of --database-url when missing (the server accepts only existing users).")
	f.String(&role, "role", "BACKFILL_TOKEN_ROLE", "authenticated", "anon, authenticated or service_role")
	f.String(&userID, "user", "BACKFILL_TOKEN_USER", "", "the user's UUID for --role authenticated (default: a new random one)")
	f.String(&secret, "jwt-secret", "BACKFILL_JWT_SECRET", server.LocalJWTSecret, "HS256 secret to sign with")
	f.String(&issuer, "issuer", "BACKFILL_TOKEN_ISSUER", server.LocalIssuer, "iss of a user token")
	f.String(&dbURL, "database-url", "BACKFILL_DATABASE_URL", devDatabaseURL, "database whose auth.users gets the user")
	f.Duration(&ttl, "ttl", "BACKFILL_TOKEN_TTL", time.Hour, "how long the token is valid")
	if err := f.Parse(args); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: --ttl must be positive", errUsage)
	}
	switch role {
	case server.RoleAnon, server.RoleServiceRole:
		if userID != "" {
			return fmt.Errorf("%w: --user goes with --role authenticated only", errUsage)
		}
	case server.RoleAuthenticated:
		if userID == "" {
			userID = newUUID()
		}
		conn, err := connect(ctx, dbURL, 10*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if _, err := conn.Exec(ctx, ensureUserSQL, userID, userID+"@dev.local"); err != nil {
			return fmt.Errorf("create user %s: %w", userID, err)
		}
	default:
		return fmt.Errorf("%w: --role %q: want anon, authenticated or service_role", errUsage, role)
	}
	claims, err := server.TokenClaims(role, userID, issuer, time.Now(), ttl)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	tok, err := server.SignHS256(secret, claims)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
