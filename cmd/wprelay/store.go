// The store cmd opens: the bbolt file in the data dir, or MySQL/MariaDB.

package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/relay/config"
	"github.com/wprelay/wprelay/relay/deliver"
	"github.com/wprelay/wprelay/store"
	"github.com/wprelay/wprelay/store/mysql"
)

// openedStore is the configured store, the bbolt file or the
// MySQL/MariaDB database, as each part of the daemon uses it: wired from
// the concrete type openStore opened, each field one capability.
type openedStore struct {
	Queue     relay.Queue
	Admin     admin.Store
	Pruner    relay.Pruner
	Counters  relay.Counters
	Settler   deliver.Settler // nil: outcomes are committed one by one
	Backup    admin.Backuper  // nil: the store is copied with its own tools
	Bolt      *store.DB       // the bbolt store, or nil
	MySQL     *mysql.DB       // the MySQL store, or nil
	Size      func() int64
	ResealAll func(ctx context.Context, batch int, progress func(done int)) (int, error)
	Close     func() error
}

func boltStore(db *store.DB) *openedStore {
	return &openedStore{Queue: db, Admin: db, Pruner: db, Counters: db, Settler: db, Backup: db, Bolt: db,
		Size: db.Size, ResealAll: db.ResealAll, Close: db.Close}
}

func mysqlStore(db *mysql.DB) *openedStore {
	return &openedStore{Queue: db, Admin: db, Pruner: db, Counters: db, MySQL: db,
		Size: db.Size, ResealAll: db.ResealAll, Close: db.Close}
}

// openStore opens the store that cfg.Store selects: the bbolt file in the
// data dir, or the tables of store.dsn (migrating their schema first).
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, onCommit func(int, time.Duration)) (*openedStore, error) {
	if cfg.Store.Kind == "mysql" {
		var sealer *mysql.Sealer
		if len(cfg.Encryption.Keys) > 0 {
			var keys []mysql.Key
			for _, k := range cfg.Encryption.Keys {
				b, err := config.DecodeKey(k.Key)
				if err != nil {
					return nil, fmt.Errorf("encryption key %q: %w", k.ID, err)
				}
				keys = append(keys, mysql.Key{ID: k.ID, Secret: b})
			}
			var err error
			if sealer, err = mysql.NewSealer(keys); err != nil {
				return nil, err
			}
		}
		db, err := mysql.Open(ctx, mysql.Options{
			DSN: cfg.Store.DSN.Reveal(), TablePrefix: cfg.Store.TablePrefix, MaxConns: cfg.Store.MaxConns,
			PendingTTL: time.Second, Logger: log, Sealer: sealer, OnCommit: onCommit,
		})
		if err != nil {
			return nil, err
		}
		return mysqlStore(db), nil
	}
	sealer, err := buildSealer(cfg.Encryption)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(cfg.DataDir, "wprelay.db"), store.Options{
		Commit: cfg.Store.Commit, BatchDelay: time.Duration(cfg.Store.BatchDelay), Logger: log, OnCommit: onCommit, Sealer: sealer,
	})
	if err != nil {
		return nil, err
	}
	return boltStore(db), nil
}

// buildSealer returns the store's sealer, or nil when encryption is off.
func buildSealer(c config.Encryption) (*store.Sealer, error) {
	if len(c.Keys) == 0 {
		return nil, nil
	}
	var keys []store.Key
	for _, k := range c.Keys {
		b, err := config.DecodeKey(k.Key)
		if err != nil {
			return nil, fmt.Errorf("encryption key %q: %w", k.ID, err)
		}
		keys = append(keys, store.Key{ID: k.ID, Secret: b})
	}
	return store.NewSealer(keys)
}
