package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay/config"
)

// secrets are the credentials shared between the sidecar and the plugin.
type secrets struct {
	SiteJWT     string `json:"site_jwt_secret"`     // WordPress → sidecar JWT (HS256)
	SiteSigning string `json:"site_signing_secret"` // WordPress → sidecar Standard Webhooks
	WPJWT       string `json:"wp_jwt_secret"`       // sidecar → WordPress JWT (HS256)
	WPSigning   string `json:"wp_signing_secret"`   // sidecar → WordPress Standard Webhooks
	AdminToken  string `json:"admin_token"`         // admin API bearer token
}

func newSecrets() secrets {
	return secrets{
		SiteJWT: randomToken(32), SiteSigning: "whsec_" + base64.StdEncoding.EncodeToString(randomBytes(32)),
		WPJWT: randomToken(32), WPSigning: "whsec_" + base64.StdEncoding.EncodeToString(randomBytes(32)),
		AdminToken: randomToken(32),
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b
}

func randomToken(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }

// defaultConfig is the embedded default: a wordpress source whose secrets
// are generated once and kept in the data dir; a wordpress target when
// WPRELAY_WP_URL names the site. banner holds the wp-config.php lines the
// first time the secrets are made.
func defaultConfig(dataDir string) (config.Config, string, error) {
	cfg := config.Default()
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	if err := privateDir(cfg.DataDir); err != nil {
		return cfg, "", fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "default-secrets.json")
	var s secrets
	fresh := false
	data, err := os.ReadFile(path)
	if err == nil {
		err = tighten(path, 0o600)
	}
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &s); err != nil || s.SiteJWT == "" || s.AdminToken == "" {
			return cfg, "", fmt.Errorf("%s is damaged: remove it to generate new secrets (then update wp-config.php)", path)
		}
	case errors.Is(err, fs.ErrNotExist):
		s, fresh = newSecrets(), true
		data, _ := json.MarshalIndent(s, "", "  ")
		if err := writePrivate(path, append(data, '\n')); err != nil {
			return cfg, "", fmt.Errorf("write default secrets: %w", err)
		}
	default:
		return cfg, "", fmt.Errorf("read default secrets: %w", err)
	}
	site := os.Getenv("WPRELAY_SITE_URL")
	if site == "" {
		site = "http://localhost"
	}
	cfg.Admin.Token = config.Secret(s.AdminToken)
	cfg.Sources = []config.Source{{
		Name: "wordpress", Kind: "wordpress", Issuer: site,
		JWTSecret: config.Secret(s.SiteJWT), Secrets: []config.Secret{config.Secret(s.SiteSigning)},
	}}
	if wp := os.Getenv("WPRELAY_WP_URL"); wp != "" {
		cfg.Targets = []config.Target{{
			Name: "wordpress", Kind: "wordpress", URL: strings.TrimRight(wp, "/") + "/wp-json/wprelay/v1/events",
			Audience: strings.TrimRight(wp, "/"), JWTSecret: config.Secret(s.WPJWT), SigningSecret: config.Secret(s.WPSigning),
		}}
	}
	banner := ""
	if fresh {
		banner = fmt.Sprintf("wprelay: generated secrets in %s (shown once; keep them secret).\n"+
			"Add these lines to wp-config.php (site URL %s; set WPRELAY_SITE_URL to change it):\n\n%s\n",
			path, site, wpConfigLines(s, "wordpress", "http://127.0.0.1"+portOf(cfg.Listen), "http://"+cfg.Admin.Listen))
	}
	return cfg, banner, nil
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i:]
	}
	return ""
}

// wpConfigLines are the wp-config.php constants matching s.
func wpConfigLines(s secrets, source, sidecarURL, adminURL string) string {
	lines := [][2]string{
		{"WPRELAY_SIDECAR_URL", sidecarURL},
		{"WPRELAY_SOURCE", source},
		{"WPRELAY_SITE_JWT_SECRET", s.SiteJWT},
		{"WPRELAY_SITE_SIGNING_SECRET", s.SiteSigning},
		{"WPRELAY_WP_JWT_SECRET", s.WPJWT},
		{"WPRELAY_WP_SIGNING_SECRET", s.WPSigning},
		{"WPRELAY_ADMIN_URL", adminURL},
		{"WPRELAY_ADMIN_TOKEN", s.AdminToken},
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "define( '%s', '%s' );\n", l[0], l[1])
	}
	return b.String()
}

func cmdInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", "Write wprelay.yaml with fresh secrets (kept in files beside it, mode 0600)\n"+
		"and print the matching wp-config.php lines.",
		"  wprelay init --dir /etc/wprelay --site-url https://example.com\n  sudo systemctl restart wprelay", stderr)
	dir := fs.String("dir", ".", "directory for wprelay.yaml and secrets/")
	site := fs.String("site-url", "http://localhost", "the WordPress site's URL (JWT issuer and audience)")
	sidecar := fs.String("sidecar-url", "http://127.0.0.1:8080", "the URL WordPress uses to reach the sidecar")
	force := fs.Bool("force", false, "overwrite an existing wprelay.yaml and secrets")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	site2 := strings.TrimRight(*site, "/")
	cfgPath := filepath.Join(*dir, "wprelay.yaml")
	if _, err := os.Stat(cfgPath); err == nil && !*force {
		return usageError{fmt.Errorf("%s exists; pass --force to replace it and its secrets", cfgPath)}
	}
	s := newSecrets()
	sdir := filepath.Join(*dir, "secrets")
	if err := privateDir(sdir); err != nil {
		return err
	}
	for name, v := range map[string]string{
		"site_jwt_secret": s.SiteJWT, "site_signing_secret": s.SiteSigning,
		"wp_jwt_secret": s.WPJWT, "wp_signing_secret": s.WPSigning, "admin_token": s.AdminToken,
	} {
		if err := writePrivate(filepath.Join(sdir, name), []byte(v+"\n")); err != nil {
			return err
		}
	}
	yaml := fmt.Sprintf(`# wprelay configuration, written by "wprelay init" on %s.
# Secrets live in secrets/ beside this file; ${file:...} paths are relative to it.
# Every key, with its default: deploy/wprelay.example.yaml in the wprelay repository.
# Check this file after an edit: wprelay check --config <this file>
listen: ":8080"
admin: {listen: "127.0.0.1:8081", token: "${file:secrets/admin_token}"}
data_dir: ./data            # relative to this file
log: {format: auto, level: info}
limits: {max_body: 524288, max_queue: 1000000}
retention: {dedupe: 168h, events: 720h}

sources:
  # Events WordPress emits (post published, user registered, ...).
  - name: wordpress
    kind: wordpress
    issuer: %q
    jwt_secret: "${file:secrets/site_jwt_secret}"
    secrets: ["${file:secrets/site_signing_secret}"]
  # A provider, for example Stripe (one tenant per Stripe account):
  # - {name: stripe, kind: stripe, tenants: [{name: acme, secrets: ["${STRIPE_SECRET_ACME}"]}]}

targets:
  - name: wordpress
    kind: wordpress
    url: %q
    audience: %q
    jwt_secret: "${file:secrets/wp_jwt_secret}"
    signing_secret: "${file:secrets/wp_signing_secret}"
    timeout: 10s
    max_attempts: 8
    concurrency: 4

routes: []
  # - {source: stripe, types: ["invoice.*"], to: [wordpress]}
`, time.Now().UTC().Format(time.DateOnly), site2, site2+"/wp-json/wprelay/v1/events", site2)
	if err := writePrivate(cfgPath, []byte(yaml)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote %s and %s/ (mode 0600).\n\nAdd these lines to wp-config.php, above \"That's all, stop editing!\":\n\n%s\nCheck it after an edit: wprelay check --config %s\nThen run: wprelay serve --config %s\n",
		cfgPath, sdir, wpConfigLines(s, "wordpress", *sidecar, "http://127.0.0.1:8081"), cfgPath, cfgPath)
	return nil
}
