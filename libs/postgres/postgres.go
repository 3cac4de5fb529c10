// Package postgres opens b24hub's PostgreSQL pools and applies each
// service's embedded migrations. Every service keeps its tables in its own
// schema and its own migration version table, so services migrate
// independently and never touch each other's tables.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strconv"
	"strings"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
)

// DefaultURL is the local PostgreSQL the local stack uses when
// B24HUB_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/b24hub?sslmode=disable"

// DefaultMaxConns is the pool size of a process when neither
// B24HUB_DATABASE_MAX_CONNS nor pool_max_conns in the URL says otherwise.
// pgxpool's own default, max(4, number of CPUs), grows with the node: 22
// pods on 16-core nodes would open 352 connections. deploy/k8stest checks
// that the manifests' replicas times their pool sizes fit the
// CloudNativePG cluster's max_connections.
const DefaultMaxConns = 5

// MaxConnsEnv names the pool size setting every service reads.
const MaxConnsEnv = "B24HUB_DATABASE_MAX_CONNS"

// maxMaxConns bounds the setting: more connections than this per process is
// a typo, not a plan.
const maxMaxConns = 1000

// MaxConnsFromEnv reads B24HUB_DATABASE_MAX_CONNS: 0 when unset (Open then
// keeps the URL's pool_max_conns or DefaultMaxConns), else a whole number
// from 1 to 1000.
func MaxConnsFromEnv(getenv func(string) string) (int32, error) {
	v := strings.TrimSpace(getenv(MaxConnsEnv))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxMaxConns {
		return 0, fmt.Errorf("%s: want a whole number of connections from 1 to %d, got %q", MaxConnsEnv, maxMaxConns, v)
	}
	return int32(n), nil
}

// Option adjusts the pool Open builds.
type Option func(*pgxpool.Config)

// WithMaxConns caps the pool at n connections, over pool_max_conns in the
// URL; n <= 0 changes nothing (an unset MaxConnsFromEnv).
func WithMaxConns(n int32) Option {
	return func(c *pgxpool.Config) {
		if n > 0 {
			c.MaxConns = n
			c.MinConns = min(c.MinConns, n)
		}
	}
}

// PoolConfig parses dsn into the pool configuration Open uses: the pool
// size (DefaultMaxConns unless the URL's pool_max_conns or an option says
// otherwise) and OpenTelemetry tracing (otelpgx). For callers that build
// the pool themselves, e.g. lazily while PostgreSQL is down.
func PoolConfig(dsn string, opts ...Option) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
		cfg.MinConns = min(cfg.MinConns, cfg.MaxConns)
	}
	for _, o := range opts {
		o(cfg)
	}
	// Spans only inside a trace that is already recording (an event being
	// processed), so pool maintenance and background jobs make no root
	// spans; statements are recorded without their arguments.
	cfg.ConnConfig.Tracer = otelpgx.NewTracer()
	return cfg, nil
}

// Open connects to dsn and returns a pool. When create is true and the
// database does not exist, it is created first through the server's
// "postgres" database (convenient locally; in production the database is
// provisioned by the platform and create is false). Queries run inside a
// recording span get a child span each (otelpgx: statement text, never
// arguments), and the pool's statistics are exported as pgxpool.* metrics,
// both through the global OpenTelemetry providers.
func Open(ctx context.Context, dsn string, create bool, opts ...Option) (*pgxpool.Pool, error) {
	cfg, err := PoolConfig(dsn, opts...)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: pool: %w", err)
	}
	err = pool.Ping(ctx)
	var pgErr *pgconn.PgError
	if err != nil && create && errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
		pool.Close()
		if err := createDatabase(ctx, dsn, cfg.ConnConfig.Database); err != nil {
			return nil, err
		}
		if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			return nil, fmt.Errorf("postgres: pool: %w", err)
		}
		err = pool.Ping(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect %s: %w", Redact(dsn), err)
	}
	if err := otelpgx.RecordStats(pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: pool metrics: %w", err)
	}
	return pool, nil
}

func createDatabase(ctx context.Context, dsn, name string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("postgres: parse url: %w", err)
	}
	u.Path = "/postgres"
	// pool_* settings are pgxpool's, not the server's: drop them for this
	// single connection.
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	c, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("postgres: connect to create database %q: %w", name, err)
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") { // duplicate_database: a racing creator won
		return fmt.Errorf("postgres: create database %q: %w", name, err)
	}
	return nil
}

// Migrate applies the *.sql migrations in migrations (tern format, files
// named 001_name.sql, ...) inside schema, recording versions in
// <schema>.schema_version. Unqualified table names in the migrations are
// created in schema. It takes tern's advisory lock, so concurrent
// replicas or jobs are safe, and running it twice is a no-op.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, migrations fs.FS) error {
	if err := migrateVersions(ctx, pool, schema, "schema_version", migrations); err != nil {
		return err
	}
	if wc, ok := migrations.(withComponents); ok {
		for _, c := range wc.components {
			if err := MigrateComponent(ctx, pool, schema, c.Name, c.Migrations); err != nil {
				return err
			}
		}
	}
	return nil
}

// Component is a library's own migrations for tables it owns inside a
// service's schema (MigrateComponent), e.g. the consumer outbox.
type Component struct {
	// Name names its version table, <schema>.<Name>_schema_version: a
	// lower-case identifier. Required.
	Name string
	// Migrations are its NNN_name.sql files. Required.
	Migrations fs.FS
}

// withComponents is a service's migrations that carry library components.
type withComponents struct {
	fs.FS
	components []Component
}

// WithComponents returns the service's migrations carrying components:
// Migrate applies the service's own first, then each component's with
// MigrateComponent, in order. So whoever migrates the schema (the
// service at start, its migrate command, a deploy Job) migrates the
// library tables it uses too. The result reads like migrations.
func WithComponents(migrations fs.FS, components ...Component) fs.FS {
	return withComponents{FS: migrations, components: components}
}

// MigrateComponent is Migrate for a library that owns tables inside a
// service's schema (the consumer outbox): its migrations are numbered on
// their own and recorded in <schema>.<component>_schema_version, so the
// library can evolve its tables without renumbering any service's
// migrations. component must be a plain lower-case identifier.
func MigrateComponent(ctx context.Context, pool *pgxpool.Pool, schema, component string, migrations fs.FS) error {
	if !validComponent(component) {
		return fmt.Errorf("postgres: component %q must be lower-case letters, digits and '_'", component)
	}
	return migrateVersions(ctx, pool, schema, component+"_schema_version", migrations)
}

func validComponent(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

func migrateVersions(ctx context.Context, pool *pgxpool.Pool, schema, versionTable string, migrations fs.FS) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", schema, err)
	}
	defer conn.Release()
	// Replicas starting together would race on CREATE SCHEMA (a unique
	// violation even with IF NOT EXISTS), so serialise per schema first.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext('b24hub.schema.' || $1))", schema); err != nil {
		return fmt.Errorf("postgres: lock schema %s: %w", schema, err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext('b24hub.schema.' || $1))", schema)
	}()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("postgres: create schema %s: %w", schema, err)
	}
	// Unqualified names in migrations land in the service's schema.
	if _, err := conn.Exec(ctx, "SET search_path TO "+pgx.Identifier{schema}.Sanitize()+", public"); err != nil {
		return fmt.Errorf("postgres: search_path %s: %w", schema, err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "RESET search_path") }()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), schema+"."+versionTable)
	if err != nil {
		return fmt.Errorf("postgres: migrator %s: %w", schema, err)
	}
	if err := m.LoadMigrations(inSchema{migrations, schema}); err != nil {
		return fmt.Errorf("postgres: load migrations %s: %w", schema, err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", schema, err)
	}
	return nil
}

// inSchema prefixes every migration with a SET search_path to its schema.
// tern runs "reset all" after each migration (so that one migration's SET
// does not leak into the version update), which also resets the
// search_path set on the connection once: without the prefix, a run that
// applies 001 and 002 together creates 002's unqualified tables in public.
type inSchema struct {
	fs.FS
	schema string
}

// ReadFile is what tern reads each migration with (fs.ReadFile prefers it).
func (f inSchema) ReadFile(name string) ([]byte, error) {
	b, err := fs.ReadFile(f.FS, name)
	if err != nil || !strings.HasSuffix(name, ".sql") {
		return b, err
	}
	set := "SET search_path TO " + pgx.Identifier{f.schema}.Sanitize() + ", public;\n"
	return append([]byte(set), b...), nil
}

// ReadDir lists the migrations (fs.ReadDir prefers it).
func (f inSchema) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(f.FS, name) }

// Redact hides the password of a connection URL for logs.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable url)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return strings.ReplaceAll(u.String(), "%2A", "*")
}
