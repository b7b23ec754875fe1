package main

// Structural checks of deploy/: every example config passes the real
// validator, and the Dockerfile, compose file and systemd units say what
// the docs promise. No Docker engine runs here; systemd-analyze and nginx
// checks run with the integration tests (deploy_tools_test.go).

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wprelay/wprelay/relay/config"
)

// deployDir is the repository's deploy/ from this package's directory.
const deployDir = "../../deploy"

// exampleEnv resolves every ${VAR} and ${file:...} of an example with a
// value of the right shape (a Standard Webhooks secret fits every secret
// field; encryption keys are 32 bytes of base64), and records what was
// asked for.
type exampleEnv struct {
	vars, files []string
}

func (e *exampleEnv) env(dir string) config.Env {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	key := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	return config.Env{
		Dir: dir,
		Lookup: func(name string) (string, bool) {
			e.vars = append(e.vars, name)
			switch {
			case strings.Contains(name, "ENCRYPTION_KEY"):
				return key, true
			case strings.Contains(name, "DSN"):
				return "wprelay:pass@tcp(db.internal:3306)/wprelay?tls=true", true
			case name == "SITE_URL":
				return "http://localhost:8000", true
			}
			return secret, true
		},
		ReadFile: func(path string) ([]byte, error) {
			e.files = append(e.files, path)
			if strings.Contains(path, "encryption") {
				return []byte(key + "\n"), nil
			}
			return []byte(secret + "\n"), nil
		},
	}
}

func TestDeploy_ExampleConfigsValidate(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(deployDir, "examples", "*.yaml"))
	files = append(files, filepath.Join(deployDir, "wprelay.example.yaml"), filepath.Join(deployDir, "compose", "wprelay.yaml"))
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var e exampleEnv
			cfg, err := config.Parse(data, e.env(filepath.Dir(f)))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("validate:\n%v", err)
			}
			// No secret is written in an example: every secret field is a reference.
			for _, line := range strings.Split(string(data), "\n") {
				code, _, _ := strings.Cut(line, "#")
				for _, m := range secretField.FindAllStringSubmatch(code, -1) {
					if m[1] != "" && !strings.Contains(m[1], "${") {
						t.Errorf("a literal secret in %s: %s", f, strings.TrimSpace(line))
					}
				}
				if strings.Contains(code, "whsec_") && !strings.Contains(code, "whsec_...") {
					t.Errorf("a literal whsec_ secret in %s: %s", f, strings.TrimSpace(line))
				}
			}
		})
	}
}

// secretField matches a secret-holding key and its quoted value.
var secretField = regexp.MustCompile(`\b(?:token|secret|secrets|jwt_secret|signing_secret|key|Authorization)"?:\s*\[?"([^"]*)"`)

// initSecretFiles runs "wprelay init" and returns the secret files it
// writes and the wp-config.php constants it prints.
func initSecretFiles(t *testing.T) (files, constants []string) {
	t.Helper()
	dir := t.TempDir()
	var out strings.Builder
	if code := run([]string{"init", "--dir", dir, "--site-url", "https://example.com"}, &out, io.Discard); code != 0 {
		t.Fatalf("init: exit %d", code)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		files = append(files, e.Name())
	}
	for _, m := range regexp.MustCompile(`define\( '(WPRELAY_[A-Z_]+)'`).FindAllStringSubmatch(out.String(), -1) {
		constants = append(constants, m[1])
	}
	if len(files) < 5 || len(constants) < 8 {
		t.Fatalf("init wrote %v and printed %v", files, constants)
	}
	return files, constants
}

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command         []string          `yaml:"command"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	Volumes         []string          `yaml:"volumes"`
	Secrets         []string          `yaml:"secrets"`
	Profiles        []string          `yaml:"profiles"`
	NetworkMode     string            `yaml:"network_mode"`
	ReadOnly        bool              `yaml:"read_only"`
	CapDrop         []string          `yaml:"cap_drop"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Healthcheck     *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func TestDeploy_Compose(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(false)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, name := range []string{"db", "wordpress", "wprelay", "init"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("no service %q", name)
		}
	}
	for name, s := range c.Services {
		if s.Image == "" || strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image, ":") {
			t.Errorf("%s: image %q: want a pinned tag", name, s.Image)
		}
		if name != "init" && s.Healthcheck == nil {
			t.Errorf("%s: no healthcheck", name)
		}
		for k, v := range s.Environment {
			secretish := regexp.MustCompile(`PASSWORD|SECRET|TOKEN|_KEY$`).MatchString(k)
			if secretish && !strings.HasSuffix(k, "_FILE") && v != "1" && !strings.HasPrefix(v, "${") {
				t.Errorf("%s: environment %s holds a value; secrets come from files", name, k)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: port %q is published on every interface", name, p)
			}
		}
	}
	published := map[string][]string{}
	for name, s := range c.Services {
		if len(s.Ports) > 0 {
			published[name] = s.Ports
		}
	}
	if fmt.Sprint(published) != "map[wordpress:[127.0.0.1:8000:80] wprelay:[127.0.0.1:8080:8080]]" {
		t.Errorf("published ports %v; want only the site and the webhook listener (never the admin API or the database)", published)
	}
	if strings.Contains(string(data), "whsec_") {
		t.Error("compose.yaml holds a whsec_ secret")
	}

	// The sidecar: built from deploy/Dockerfile, sandboxed, its config
	// mounted where the command reads it, the secrets volume read-only.
	w := c.Services["wprelay"]
	if w.Build == nil || w.Build.Dockerfile != "deploy/Dockerfile" || w.Build.Context != ".." {
		t.Errorf("wprelay build: %+v", w.Build)
	}
	if !w.ReadOnly || !slices.Equal(w.CapDrop, []string{"ALL"}) {
		t.Errorf("wprelay: read_only %v, cap_drop %v", w.ReadOnly, w.CapDrop)
	}
	if !slices.Contains(w.Volumes, "./compose/wprelay.yaml:/config/wprelay.yaml:ro") || !slices.Contains(w.Command, "/config/wprelay.yaml") ||
		!slices.Contains(w.Volumes, "wprelay-etc:/etc/wprelay:ro") || !slices.Contains(w.Volumes, "wprelay-data:/var/lib/wprelay") {
		t.Errorf("wprelay: volumes %v, command %v", w.Volumes, w.Command)
	}
	if grace, err := time.ParseDuration(w.StopGracePeriod); err != nil || grace <= config.Default().Shutdown.D() {
		t.Errorf("wprelay: stop_grace_period %q must exceed the shutdown grace %s", w.StopGracePeriod, config.Default().Shutdown.D())
	}
	in := c.Services["init"]
	if !slices.Equal(in.Profiles, []string{"init"}) || in.NetworkMode != "none" || !slices.Contains(in.Volumes, "wprelay-etc:/etc/wprelay") ||
		len(in.Command) == 0 || in.Command[0] != "init" {
		t.Errorf("init: %+v", in)
	}

	// WordPress: the plugin mounted read-only, the secrets volume read-only,
	// and every constant "wprelay init" prints defined from a file it writes.
	wp := c.Services["wordpress"]
	if !slices.Contains(wp.Volumes, "../wpplugin:/var/www/html/wp-content/plugins/wprelay:ro") || !slices.Contains(wp.Volumes, "wprelay-etc:/run/wprelay:ro") {
		t.Errorf("wordpress volumes: %v", wp.Volumes)
	}
	if _, err := os.Stat(filepath.Join(deployDir, "..", "wpplugin", "wprelay.php")); err != nil {
		t.Errorf("the mounted plugin: %v", err)
	}
	files, constants := initSecretFiles(t)
	extra := wp.Environment["WORDPRESS_CONFIG_EXTRA"]
	for _, k := range constants {
		if !strings.Contains(extra, "'"+k+"'") {
			t.Errorf("WORDPRESS_CONFIG_EXTRA does not define %s", k)
		}
	}
	for _, f := range files {
		if !strings.Contains(extra, "'"+f+"'") {
			t.Errorf("WORDPRESS_CONFIG_EXTRA does not read the secret file %s", f)
		}
	}
	if wp.Environment["APACHE_RUN_USER"] != "#65532" {
		t.Errorf("apache runs as %q: it must be the uid that owns init's files (65532)", wp.Environment["APACHE_RUN_USER"])
	}

	// The sidecar's compose config reads only files that init writes.
	cfgData, err := os.ReadFile(filepath.Join(deployDir, "compose", "wprelay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{file:/etc/wprelay/secrets/([a-z_]+)\}`).FindAllStringSubmatch(string(cfgData), -1) {
		if !slices.Contains(files, m[1]) {
			t.Errorf("compose/wprelay.yaml reads secrets/%s, which init does not write", m[1])
		}
	}

	// Compose secrets are generated files, kept out of git.
	for name, s := range c.Secrets {
		if !strings.HasPrefix(s.File, "./compose/secrets/") {
			t.Errorf("secret %s: file %q, want under ./compose/secrets/", name, s.File)
		}
	}
	ignore, err := os.ReadFile(filepath.Join(deployDir, "compose", ".gitignore"))
	if err != nil || !strings.Contains(string(ignore), "/secrets/") {
		t.Errorf("deploy/compose/.gitignore must ignore /secrets/: %v", err)
	}
	for _, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if _, ok := c.Volumes[src]; !ok {
					t.Errorf("volume %q is used but not declared", src)
				}
			}
		}
	}
}

func TestDeploy_Dockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var froms, users []string
	var final []string // instructions of the last stage
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(string(data), "\\\n", " ")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr := strings.ToUpper(strings.Fields(line)[0])
		switch instr {
		case "FROM":
			froms = append(froms, line)
			final = nil
		case "USER":
			users = append(users, line)
		case "ADD":
			t.Errorf("ADD (%s): use COPY; never fetch remote URLs into the image", line)
		}
		final = append(final, line)
	}
	if len(froms) < 2 || !strings.Contains(froms[0], " AS build") || !strings.Contains(froms[0], "golang:") {
		t.Errorf("want a multi-stage build (golang … AS build, then a runtime stage): %v", froms)
	}
	if last := froms[len(froms)-1]; strings.Contains(last, "golang") || !strings.Contains(last, "distroless/static") {
		t.Errorf("runtime stage %q: want a minimal static base with CA certificates", last)
	}
	text := string(data)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/wprelay", "VOLUME [\"/var/lib/wprelay\"]", "EXPOSE 8080"} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if len(users) == 0 || !slices.ContainsFunc(final, func(l string) bool { return strings.HasPrefix(l, "USER ") }) {
		t.Fatalf("the runtime stage sets no USER")
	}
	if u := strings.Fields(users[len(users)-1])[1]; strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
		t.Errorf("runs as %s; want a non-root user", u)
	}
	hc := slices.IndexFunc(final, func(l string) bool { return strings.HasPrefix(l, "HEALTHCHECK") })
	if hc < 0 || !strings.Contains(final[hc], `"/usr/local/bin/wprelay", "healthcheck"`) || strings.Contains(final[hc], "curl") || strings.Contains(final[hc], "wget") {
		t.Errorf("HEALTHCHECK must run the binary itself: %v", hc)
	}
	if code, _, _ := runBackupCLI("healthcheck", "--help"); code != 0 {
		t.Error("the binary has no healthcheck command")
	}
	if !strings.Contains(text, `ENTRYPOINT ["/usr/local/bin/wprelay"]`) || !strings.Contains(text, `"serve", "--config", "/etc/wprelay/wprelay.yaml", "--data-dir", "/var/lib/wprelay"`) {
		t.Error("ENTRYPOINT/CMD: want the binary serving /etc/wprelay/wprelay.yaml with the store in the volume")
	}

	// The build context filter keeps every package the binary is built from.
	ignore, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, _ := filepath.Abs("../..")
	for _, dir := range strings.Fields(string(out)) {
		rel, _ := filepath.Rel(root, dir)
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if !strings.Contains(string(ignore), "!"+top+"/") {
			t.Errorf("the image build needs %s/, which Dockerfile.dockerignore leaves out", top)
		}
	}
}

// unitDirectives reads a systemd unit into key → values.
func unitDirectives(t *testing.T, name string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir, "systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

func TestDeploy_SystemdUnit(t *testing.T) {
	d := unitDirectives(t, "wprelay.service")
	want := map[string]string{
		"User": "wprelay", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "MemoryDenyWriteExecute": "yes",
		"Restart": "on-failure", "ReadWritePaths": "/var/lib/wprelay", "EnvironmentFile": "-/etc/wprelay/wprelay.env",
		"StateDirectory": "wprelay",
	}
	for k, v := range want {
		if !slices.Contains(d[k], v) {
			t.Errorf("%s=%q, want %q", k, d[k], v)
		}
	}
	if !slices.Contains(d["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter=%v", d["SystemCallFilter"])
	}
	if len(d["ReadWritePaths"]) != 1 {
		t.Errorf("ReadWritePaths=%v: the data dir only", d["ReadWritePaths"])
	}
	exec := strings.Join(d["ExecStart"], " ")
	if !strings.Contains(exec, "serve --config /etc/wprelay/wprelay.yaml --data-dir /var/lib/wprelay") {
		t.Errorf("ExecStart=%s: the data dir must be the writable path", exec)
	}
	stop, err := time.ParseDuration(strings.TrimSuffix(d["TimeoutStopSec"][0], "ec"))
	if err != nil || stop <= config.Default().Shutdown.D() {
		t.Errorf("TimeoutStopSec=%v must exceed the shutdown grace %s", d["TimeoutStopSec"], config.Default().Shutdown.D())
	}
	if !slices.Contains(d["RestartPreventExitStatus"], "2") {
		t.Error("a configuration error (exit 2) must not restart in a loop")
	}
	b := unitDirectives(t, "wprelay-backup.service")
	if !slices.Contains(b["User"], "wprelay") || !strings.Contains(strings.Join(b["ExecStart"], ""), "wprelay backup --token-file /etc/wprelay/secrets/admin_token") {
		t.Errorf("wprelay-backup.service: %v", b)
	}
}

// TestDeploy_NginxMatchesTheSidecar: the snippet's body limit and waits are
// the sidecar's defaults (limits.max_body, http.read_timeout and
// write_timeout), so nginx refuses what the sidecar would and waits as long.
func TestDeploy_NginxMatchesTheSidecar(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "nginx", "wprelay.conf"))
	if err != nil {
		t.Fatal(err)
	}
	directive := func(name string) string {
		m := regexp.MustCompile(`(?m)^\s*` + name + `\s+([^;]+);`).FindStringSubmatch(string(data))
		if m == nil {
			t.Fatalf("no %s in the snippet", name)
		}
		return m[1]
	}
	size := func(v string) int64 {
		mult := map[byte]int64{'k': 1 << 10, 'm': 1 << 20}[v[len(v)-1]]
		n, _ := strconv.ParseInt(strings.TrimRight(v, "km"), 10, 64)
		if mult == 0 {
			mult = 1
		}
		return n * mult
	}
	def := config.Default()
	if got := size(directive("client_max_body_size")); got != def.Limits.MaxBody {
		t.Errorf("client_max_body_size %d, limits.max_body %d", got, def.Limits.MaxBody)
	}
	for name, want := range map[string]time.Duration{
		"client_body_timeout": def.HTTP.ReadTimeout.D(), "proxy_send_timeout": def.HTTP.ReadTimeout.D(),
		"proxy_read_timeout": def.HTTP.WriteTimeout.D(),
	} {
		if got, err := time.ParseDuration(directive(name)); err != nil || got != want {
			t.Errorf("%s %s, want %s", name, directive(name), want)
		}
	}
	if !strings.Contains(string(data), "X-Forwarded-For $proxy_add_x_forwarded_for") || strings.Contains(string(data), "location /admin") {
		t.Error("the snippet must pass the client address and proxy /hooks/ only")
	}
}
