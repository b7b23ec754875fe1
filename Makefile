# wprelay — make targets. `make run` and `make test` work on a fresh Debian machine with Go.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin/wprelay
FUZZTIME  ?= 5s

.PHONY: run build test deps unit integration fuzz lint php-lint phpunit promtool bench clean plugin-check pot plugin-zip integration-run

# Third-party tools beside the clone (../shared/tools, see its README): WP-CLI's phar
# and PHP_CodeSniffer with the WordPress standards and Plugin Check's review sniffs.
TOOLS     ?= ../shared/tools
WPCLI     := php $(TOOLS)/wp-cli.phar --allow-root
WPCS      := $(TOOLS)/wpcs/run
PLUGIN_ZIP ?= bin/wprelay-plugin.zip
# Development files that stay out of the distributable plugin.
PLUGIN_EXCLUDE := tests phpunit.xml phpcs.xml.dist .phpcs.xml.dist

## run: the sidecar on its embedded default (data in ./data, a wordpress source)
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/wprelay serve --data-dir ./data

## build: a static binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/wprelay

## test: install what is missing, lint, unit tests, brief fuzzing, the plugin's PHP checks,
## then the end-to-end suite against the real binary and a real WordPress
test: deps lint unit fuzz php-lint plugin-check phpunit promtool integration

## deps: what the tests need: Debian packages when missing (MariaDB, PHP, WordPress,
## PHPUnit, Chromium for the wp-admin browser test; apt-get, so root) and the Go
## modules (chromedp included), fetched before the tests enter their network namespace
deps:
	@sh scripts/wpstack/install-packages.sh
	@test -f $(WP_CURRENT)/wp-settings.php || $(TOOLS)/wordpress-current $(dir $(WP_CURRENT))
	$(GO) mod download

unit:
	$(GO) test -count=1 ./...

# Each fuzz target runs briefly; run them for minutes by hand with FUZZTIME=5m.
# Go 1.26's fuzzing coordinator can report "context deadline exceeded" as a failure when
# -fuzztime runs out while a worker is busy (go.dev/issue/75804, fixed in Go 1.27): a run
# that fails with only that, and wrote no failing input, is run once more. Any other
# failure, or a second one, fails the build.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for name in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
			for try in 1 2; do \
				if $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/wprelay-fuzz.log 2>&1; then break; fi; \
				if [ $$try = 1 ] && grep -q 'context deadline exceeded' /tmp/wprelay-fuzz.log && ! grep -q 'Failing input written' /tmp/wprelay-fuzz.log; then \
					echo "  fuzztime deadline race (go.dev/issue/75804), no failing input: running it again"; continue; \
				fi; \
				cat /tmp/wprelay-fuzz.log; exit 1; \
			done; \
		done; \
	done

# The integration tests (the real binary, a real WordPress) run in a network namespace
# that has only loopback: nothing they start can reach another host. Everything they
# need from the network (packages, modules, the compiled test, WordPress 6.8) is fetched
# first. They run twice: every test on Debian 12's WordPress 6.1, then the plugin's
# WordPress suites (REST, events, outbox, user-sync, results, WP-CLI, Site Health,
# privacy, retention, multisite) on the current WordPress (6.8) too; the wp-admin
# browser test runs on 6.1 only.
WP_CURRENT       ?= bin/wordpress-current/wordpress
WP_CURRENT_RUN   := ^TestWP_
WP_CURRENT_SKIP  := ^TestWP_AdminPage_Browser$$
INTEGRATION_ENV  := WPRELAY_TOOLS=$(abspath $(TOOLS))
integration: deps
	$(GO) build -o /dev/null ./cmd/wprelay
	$(GO) test -c -tags integration -o /dev/null ./cmd/wprelay/
	@if unshare --net -- true 2>/dev/null; then \
		echo "unshare --net: integration tests on loopback only"; \
		unshare --net -- sh -c 'ip link set lo up && $(MAKE) --no-print-directory integration-run'; \
	else \
		echo "WARNING: unshare --net is not available (not root, or no user namespaces):" >&2; \
		echo "WARNING: running the integration tests WITHOUT a loopback-only network namespace." >&2; \
		$(MAKE) --no-print-directory integration-run; \
	fi

# integration-run: both WordPress versions, inside the namespace `integration` made.
integration-run:
	@echo "integration: every test, WordPress 6.1 (Debian 12)"
	$(INTEGRATION_ENV) WPRELAY_WP_EXPECT=6.1 $(GO) test -count=1 -tags integration -timeout 15m ./cmd/wprelay/
	@echo "integration: the WordPress suites again, WordPress $$(sed -n "s/^\$$wp_version = '\(.*\)';/\1/p" $(WP_CURRENT)/wp-includes/version.php)"
	$(INTEGRATION_ENV) WPRELAY_WP_EXPECT=6.8 WPRELAY_WP_CORE=$(abspath $(WP_CURRENT)) $(GO) test -count=1 -tags integration -timeout 10m \
		-run '$(WP_CURRENT_RUN)' -skip '$(WP_CURRENT_SKIP)' ./cmd/wprelay/

## promtool: the alert rules parse and their unit tests pass (Debian's prometheus package)
promtool:
	promtool check rules deploy/prometheus/wprelay-alerts.yml
	cd deploy/prometheus && promtool test rules wprelay-alerts.test.yml

php-lint:
	@find wpplugin scripts/wpstack -name '*.php' -print0 | xargs -0 -n1 php -l >/tmp/wprelay-php-lint.log 2>&1 \
		|| { grep -v '^No syntax errors' /tmp/wprelay-php-lint.log; exit 1; }
	@echo "php -l: $$(grep -c '^No syntax errors' /tmp/wprelay-php-lint.log) files clean"

phpunit:
	phpunit -c wpplugin/tests/phpunit.xml

## plugin-check: the WordPress Coding Standards and Plugin Check's review ruleset find no
## error and no unjustified warning outside tests/ (which the zip leaves out)
plugin-check:
	$(WPCS) --plugin-review --ignore='*/tests/*' wpplugin
	$(WPCS) --standard=WordPress --ignore='*/tests/*' wpplugin

## pot: languages/wprelay.pot from the plugin's sources (wp i18n make-pot)
pot:
	$(WPCLI) i18n make-pot wpplugin wpplugin/languages/wprelay.pot --slug=wprelay --domain=wprelay --exclude=tests

## plugin-zip: the distributable plugin ($(PLUGIN_ZIP), a wprelay/ folder) without tests
## or development files, with a languages/wprelay.pot made from its sources
plugin-zip:
	@mkdir -p $(dir $(PLUGIN_ZIP))
	@tmp=$$(mktemp -d) && cp -r wpplugin $$tmp/wprelay \
		&& for f in $(PLUGIN_EXCLUDE); do rm -rf $$tmp/wprelay/$$f; done \
		&& $(WPCLI) i18n make-pot $$tmp/wprelay $$tmp/wprelay/languages/wprelay.pot --slug=wprelay --domain=wprelay >/dev/null \
		&& rm -f $(abspath $(PLUGIN_ZIP)) && (cd $$tmp && zip -q -r -X $(abspath $(PLUGIN_ZIP)) wprelay) && rm -rf $$tmp
	@echo "$(PLUGIN_ZIP): $$(unzip -Z1 $(PLUGIN_ZIP) | grep -vc '/$$') files"

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: run gofmt -w on the files above"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./cmd/wprelay/
	@$(GO) mod tidy -diff >/dev/null || { $(GO) mod tidy -diff; echo "go.mod/go.sum: run go mod tidy"; exit 1; }

## bench: the figures of BENCH.md: Go benchmarks of the hot paths, then the side-by-side
## suite against the real binary (about 10 minutes on 2 cores; BENCH_FILL=0 skips the
## 1M-event store). Output in bench-out/.
BENCH_FILL ?= 1000000
bench: build
	$(GO) build -o bin/wprelay-bench ./cmd/wprelay-bench
	@mkdir -p bench-out
	$(GO) test -run '^$$' -bench . -benchmem ./relay/... ./store/ | tee bench-out/go.txt
	bin/wprelay-bench suite -bin $(BIN) -rounds 3 -n 20000 -fill $(BENCH_FILL) -out bench-out/results.json | tee bench-out/suite.txt

clean:
	rm -rf bin
