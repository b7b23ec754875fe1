package config

import (
	"strings"
	"testing"
)

func TestValidate_StoreMySQL(t *testing.T) {
	env := testEnv(map[string]string{
		"ADMIN_TOKEN": "0123456789abcdef0123", "STRIPE_SECRET_ACME": "whsec_stripe", "WP_JWT": "jwt-secret-value",
		"DSN": "wprelay:p@ss/w0rd@tcp(db.internal:3306)/wordpress?tls=true",
	}, map[string]string{"/etc/wprelay/secrets/gh": "gh-secret\n"})
	for _, tc := range []struct {
		store string
		want  string // "" = valid
	}{
		{`{kind: mysql, dsn: "${DSN}", table_prefix: "wprelay_"}`, ""},
		{`{kind: mysql, dsn: "${DSN}"}`, ""},
		{`{kind: mysql, dsn: "root@unix(/run/mysqld/mysqld.sock)/wp", table_prefix: "", max_conns: 4}`, ""},
		{`{kind: mysql}`, "store.dsn: required"},
		{`{kind: mysql, dsn: "mysql://user@host/db"}`, "store.dsn: not a DSN"},
		{`{kind: mysql, dsn: "user@tcp(host:3306)/"}`, "store.dsn: not a DSN"},
		{`{kind: mysql, dsn: "${DSN}", table_prefix: "wp-relay"}`, "store.table_prefix"},
		{`{kind: mysql, dsn: "${DSN}", max_conns: -1}`, "store.max_conns"},
		{`{kind: postgres}`, "unknown store"},
		{`{kind: bbolt, commit: batch, batch_delay: 1ms}`, ""},
		{`{kind: bbolt, commit: batch, batch_delay: 5s}`, "store.batch_delay"},
		{`{kind: bbolt, commit: sometimes}`, "store.commit"},
	} {
		cfg, err := Parse([]byte(sample+"store: "+tc.store+"\n"), env)
		if err != nil {
			t.Fatalf("%s: %v", tc.store, err)
		}
		err = cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.store, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want %q", tc.store, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "p@ss"):
			t.Errorf("%s: the error shows the password: %v", tc.store, err)
		}
	}
}
