package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/b24hub/b24hub/libs/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The local stack's database follows its data directory. Without
// B24HUB_DATABASE_URL the stack uses a database of its own, named in the
// data dir's "database" file (b24hub_dev_<8 hex>): a new data dir gets a new,
// empty database, so the demo portals, ledger and alerts of earlier data
// dirs do not linger in it. The database's comment records the host and
// data dir that own it; at start, databases of this host whose data dir is
// gone (or now names another database) are dropped.
const (
	dataDirDatabaseFile = "database"
	devDatabasePrefix   = "b24hub_dev_"
	ownerCommentPrefix  = "b24hub local stack data dir: "
)

var devDatabaseName = regexp.MustCompile(`^b24hub_dev_[0-9a-f]{8,32}$`)

// stackDatabase is the database the local stack runs on.
type stackDatabase struct {
	// URL is its connection URL.
	URL string
	// Name is the database name.
	Name string
	// Owned is true when the data dir owns the database (derived name);
	// false for a database given by B24HUB_DATABASE_URL, reused as is.
	Owned bool
	// Created is true when the database did not exist before this start.
	Created bool
	// Dropped lists the databases of data dirs that are gone, dropped at
	// this start.
	Dropped []string
}

// describe is the banner's line about the database.
func (d stackDatabase) describe(dataDir string) string {
	if !d.Owned {
		return fmt.Sprintf("%s (B24HUB_DATABASE_URL, reused as is: portals, ledger and alerts of earlier runs stay in it)", postgres.Redact(d.URL))
	}
	state := "kept from the last run of this data directory"
	if d.Created {
		state = "new, created for this data directory"
	}
	s := fmt.Sprintf("%s (%s; owned by %s: a new data directory gets a new database)", d.Name, state, dataDir)
	if len(d.Dropped) > 0 {
		s += fmt.Sprintf("\n                  dropped the databases of removed data directories: %s", strings.Join(d.Dropped, ", "))
	}
	return s
}

// ownedDatabase returns the database dataDir owns on the PostgreSQL server
// of serverURL (any database on it; its path is replaced), creating the
// name, the database and the ownership record on first use, and drops the
// databases whose data dir is gone.
func ownedDatabase(ctx context.Context, serverURL, dataDir string, log *slog.Logger) (stackDatabase, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return stackDatabase{}, fmt.Errorf("data dir: %w", err)
	}
	name, err := dataDirDatabase(abs)
	if err != nil {
		return stackDatabase{}, err
	}
	if name == "" {
		name = devDatabasePrefix + randomHex(4)
		if err := os.WriteFile(filepath.Join(abs, dataDirDatabaseFile), []byte(name+"\n"), 0o600); err != nil {
			return stackDatabase{}, fmt.Errorf("data dir: record database: %w", err)
		}
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return stackDatabase{}, fmt.Errorf("database url: %w", err)
	}
	d := stackDatabase{Name: name, Owned: true}
	admin := *u
	admin.Path = "/postgres"
	u.Path = "/" + name
	d.URL = u.String()

	c, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return d, fmt.Errorf("%w\n  the local stack needs PostgreSQL: start it, or set B24HUB_DATABASE_URL", err)
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		d.Created = true
	case errors.As(err, &pgErr) && pgErr.Code == "42P04": // duplicate_database: kept from the last run
	default:
		return d, fmt.Errorf("create database %s: %w", name, err)
	}
	// The comment is a string literal: COMMENT takes no parameters.
	if _, err := c.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{name}.Sanitize()+" IS "+quoteLiteral(ownerComment(abs))); err != nil {
		return d, fmt.Errorf("record the owner of database %s: %w", name, err)
	}
	d.Dropped = dropOrphans(ctx, c, name, log)
	return d, nil
}

// dataDirDatabase returns the database name recorded in dir, "" when none
// is.
func dataDirDatabase(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, dataDirDatabaseFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	name := strings.TrimSpace(string(b))
	if !devDatabaseName.MatchString(name) {
		return "", fmt.Errorf("data dir: %s names database %q, want %s<hex>; delete the file to get a new database",
			filepath.Join(dir, dataDirDatabaseFile), name, devDatabasePrefix)
	}
	return name, nil
}

// dropOrphans drops the local stack databases other than keep whose owning
// data dir no longer exists or names another database. A database still in
// use (a stack running on a data dir deleted under it) is left alone.
func dropOrphans(ctx context.Context, c *pgx.Conn, keep string, log *slog.Logger) []string {
	rows, err := c.Query(ctx, `SELECT datname, COALESCE(shobj_description(oid, 'pg_database'), '') FROM pg_database
		WHERE datname LIKE 'b24hub\_dev\_%' AND datname <> $1`, keep)
	if err != nil {
		log.WarnContext(ctx, "devstack: cannot list local stack databases", "error", err)
		return nil
	}
	type db struct{ Name, Comment string }
	dbs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[db])
	if err != nil {
		log.WarnContext(ctx, "devstack: cannot list local stack databases", "error", err)
		return nil
	}
	var dropped []string
	for _, d := range dbs {
		owner, ok := strings.CutPrefix(d.Comment, ownerCommentPrefix)
		if !ok || !devDatabaseName.MatchString(d.Name) {
			continue // not made by the local stack
		}
		dir, ok := strings.CutPrefix(owner, thisHost()+":")
		if !ok {
			continue // another machine's data dir, which this one cannot see
		}
		if owner, err := dataDirDatabase(dir); err == nil && owner == d.Name {
			continue // its data dir still owns it
		}
		if _, err := c.Exec(ctx, "DROP DATABASE "+pgx.Identifier{d.Name}.Sanitize()); err != nil {
			log.WarnContext(ctx, "devstack: database of a removed data dir not dropped", "database", d.Name, "data_dir", dir, "error", err)
			continue
		}
		log.InfoContext(ctx, "devstack: dropped the database of a removed data dir", "database", d.Name, "data_dir", dir)
		dropped = append(dropped, d.Name)
	}
	return dropped
}

// ownerComment records dir on this host as the owner of a database.
func ownerComment(dir string) string { return ownerCommentPrefix + thisHost() + ":" + dir }

// thisHost names the machine whose data dirs this stack can see, so a
// server shared by several machines never loses another one's databases.
func thisHost() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
