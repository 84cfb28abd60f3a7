# The demo release `kazoo`, driven as Kazoo drives its Erlang release (README.md, "The demo release").
#   make build-release                    -> _rel/kazoo/bin/kazoo and _rel/kazoo/bin/kazoo-$VSN
#   make release                          == ACT=console REL=kazoo_apps make release
#   REL=ecallmgr ACT=start make release   ACT: console | start | attach | stop | foreground | ...
#   make tar-release                      -> _rel/kazoo-$VSN.tar.gz
#   make read-release-cookie              REL=... ; reads $KAZOO_CONFIG or /etc/kazoo/config.ini
#   make test                             the whole test suite (what .ci/run runs)
# Every target installs what it needs first (npm ci).

REL ?= kazoo_apps
ACT ?= console
# Values passed as `REL=ecallmgr ` must not carry the trailing space into the launcher.
override REL := $(strip $(REL))
override ACT := $(strip $(ACT))

NAME := kazoo
REL_DIR := _rel/$(NAME)
REL_BIN := $(REL_DIR)/bin/$(NAME)
NODEREL := node dist/cli/main.js

DEPS_STAMP := node_modules/.package-lock.json
TOOL_SOURCES := $(shell find src templates -type f) package.json tsconfig.json
RELEASE_SOURCES := $(shell find rel apps -type f -not -path '*/node_modules/*')

.PHONY: all deps build build-release release tar-release read-release-cookie config test clean distclean

all: build-release

# --ignore-scripts: the package's prepare script (npm run build) would build noderel here, and the
# rule below then a second time; it builds once. (The only other script, esbuild's postinstall,
# checks its binary, which esbuild finds without it.) A plain `npm ci` by hand builds dist/ after
# writing the stamp, so that the rule below finds it up to date.
$(DEPS_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

deps: $(DEPS_STAMP)

dist/cli/main.js: $(DEPS_STAMP) $(TOOL_SOURCES)
	npm run --silent build
	@touch $@

build: dist/cli/main.js

$(REL_BIN): dist/cli/main.js $(RELEASE_SOURCES)
	$(NODEREL) build

build-release: $(REL_BIN)

release: build-release
	REL=$(REL) $(REL_BIN) $(ACT)

tar-release: dist/cli/main.js
	$(NODEREL) tar

# Kazoo's way: the [$(REL)] cookie of $$KAZOO_CONFIG or /etc/kazoo/config.ini, no node needed,
# no fallback to other sources (a missing file, section or key is an error naming them).
read-release-cookie: build-release
	@REL=$(REL) $(REL_BIN) cookie --ini

config: dist/cli/main.js
	@$(NODEREL) config

test: $(DEPS_STAMP)
	npx vitest run

clean:
	rm -rf _rel dist

distclean: clean
	rm -rf node_modules
