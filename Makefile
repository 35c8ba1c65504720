# Build, run and test ngx_http_inventory_module against Debian 12's nginx.

SHELL       := /bin/bash
NGINX_SRC   ?= /usr/share/nginx/src
BUILD       := $(CURDIR)/build
MODULE      := $(BUILD)/ngx_http_inventory_module.so
ASAN_MODULE := $(BUILD)/asan/ngx_http_inventory_module.so
SRCS        := $(wildcard src/*.c src/*.h) config
CORE_SRCS   := src/ngx_http_inventory_core.c src/ngx_http_inventory_clock.c \
               src/ngx_http_inventory_codec.c \
               src/ngx_http_inventory_json.c src/ngx_http_inventory_validate.c \
               src/ngx_http_inventory_render.c \
               src/ngx_http_inventory_render_read.c \
               src/ngx_http_inventory_render_parts.c \
               src/ngx_http_inventory_render_batch.c \
               src/ngx_http_inventory_pack.c \
               src/ngx_http_inventory_store.c \
               src/ngx_http_inventory_store_query.c \
               src/ngx_http_inventory_store_write.c \
               src/ngx_http_inventory_store_rebuild.c \
               src/ngx_http_inventory_store_idem.c \
               src/ngx_http_inventory_store_retention.c \
               src/ngx_http_inventory_store_record.c \
               src/ngx_http_inventory_store_repl.c \
               src/ngx_http_inventory_store_epoch.c \
               src/ngx_http_inventory_store_upgrade.c \
               src/ngx_http_inventory_store_ledger.c \
               src/ngx_http_inventory_uri.c src/ngx_http_inventory_proc.c
# the offline tool: CORE_SRCS and these
ADMIN_SRCS  := src/ngx_http_inventory_admin.c src/ngx_http_inventory_store_verify.c
UNIT_SRCS   := $(wildcard t/unit/*.c)
CFLAGS_UNIT := -std=c99 -D_DEFAULT_SOURCE -O1 -g -Wall -Wextra -Werror -Isrc
CFLAGS_ADMIN := -std=c99 -D_DEFAULT_SOURCE -O2 -g -Wall -Wextra -Werror -Isrc
# make deb: Debian's packaging tools (nginx-dev brings dh_nginx)
DEB_PACKAGES := nginx nginx-dev liblmdb-dev libyajl-dev debhelper dpkg-dev \
               build-essential lintian man-db
PACKAGES    := $(DEB_PACKAGES) lmdb-utils gcc make etcd-server \
               perl libjson-pp-perl wrk clang libclang-rt-14-dev valgrind
# command:package, for tools that may come from elsewhere (NodeSource's
# nodejs brings its own npm and conflicts with Debian's)
TOOLS       := npm:npm chromium:chromium promtool:prometheus \
               prometheus:prometheus openssl:openssl git:git
SAN_FLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=undefined
# libFuzzer targets (t/fuzz/): seconds each runs in `make fuzz`
FUZZ_TARGETS := body uri
FUZZ_SECONDS ?= 30
FUZZ_FLAGS  := -std=c99 -D_DEFAULT_SOURCE -O1 -g -Wall -Wextra -Werror -Isrc \
               -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=undefined
# docs-tools: npm packages, pinned, installed under build/npm (not committed)
NPM_DIR     := $(BUILD)/npm
NPM_PKGS    := swagger-ui-dist@5.35.0 \
               @seriousme/openapi-schema-validator@2.11.0 yaml@2.9.1 \
               ajv@8.20.0 ajv-formats@3.0.1
SWAGGER_UI  := $(BUILD)/swagger-ui

.PHONY: all deps module admin unit asan test test-unit test-e2e test-asan \
        bench bench-smoke run clean docs-tools fuzz deb deb-deps FORCE

all: module

# Install whatever a fresh Debian 12 machine lacks (needs root).
# $(1): packages, $(2): command:package pairs
define install_missing
	@missing=""; for p in $(1); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	for t in $(2); do \
	    command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    if [ "$$(id -u)" != 0 ]; then \
	        echo "run as root, or install:$$missing" >&2; exit 1; \
	    fi; \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(PACKAGES),$(TOOLS))

# what building the package needs, and no test tool
deb-deps:
	$(call install_missing,$(DEB_PACKAGES),git:git)

module: $(MODULE) $(BUILD)/inventory-admin

# $(1): objs directory, $(2): extra configure arguments
define build_module
	rm -rf $(1) && mkdir -p $(1) && cp -a $(NGINX_SRC)/. $(1)/
	cd $(1) && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" $(2) \
	        --add-dynamic-module=$(CURDIR) >configure.log 2>&1 \
	    || { cat configure.log; exit 1; }
endef

$(BUILD)/nginx/objs/Makefile: config
	$(call build_module,$(BUILD)/nginx,)

$(MODULE): $(BUILD)/nginx/objs/Makefile $(SRCS)
	$(MAKE) -s -C $(BUILD)/nginx -f objs/Makefile modules
	cp $(BUILD)/nginx/objs/ngx_http_inventory_module.so $@.tmp && mv $@.tmp $@

$(BUILD)/asan/nginx/objs/Makefile: config
	$(call build_module,$(BUILD)/asan/nginx,--with-cc-opt="$(SAN_FLAGS)" \
	    --with-ld-opt="$(SAN_FLAGS)")

$(ASAN_MODULE): $(BUILD)/asan/nginx/objs/Makefile $(SRCS)
	$(MAKE) -s -C $(BUILD)/asan/nginx -f objs/Makefile modules
	cp $(BUILD)/asan/nginx/objs/ngx_http_inventory_module.so $@.tmp && mv $@.tmp $@

asan: $(ASAN_MODULE)

$(BUILD)/unit-tests: $(CORE_SRCS) $(UNIT_SRCS) $(wildcard src/*.h t/unit/*.h)
	mkdir -p $(BUILD)
	$(CC) $(CFLAGS_UNIT) $(SAN_FLAGS) -o $@ $(UNIT_SRCS) $(CORE_SRCS) \
	    -llmdb -lyajl

unit: $(BUILD)/unit-tests

# The offline store tool: verify, rebuild, dump, stats.
$(BUILD)/inventory-admin: $(CORE_SRCS) $(ADMIN_SRCS) $(wildcard src/*.h)
	mkdir -p $(BUILD)
	$(CC) $(CFLAGS_ADMIN) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ \
	    $(ADMIN_SRCS) $(CORE_SRCS) -llmdb -lyajl

admin: $(BUILD)/inventory-admin

$(BUILD)/fuzz/fuzz-%: t/fuzz/fuzz_%.c $(CORE_SRCS) $(wildcard src/*.h)
	mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -o $@ $< $(CORE_SRCS) -llmdb -lyajl

# Each target replays its committed corpus (t/fuzz/corpus/NAME), then fuzzes
# for FUZZ_SECONDS; what it finds new goes to build/fuzz/NAME-corpus, a
# crashing input to build/fuzz/NAME-crash-*.
fuzz: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz-%)
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(BUILD)/fuzz/$$t-corpus && \
	    $(BUILD)/fuzz/fuzz-$$t -runs=0 t/fuzz/corpus/$$t \
	        2>$(BUILD)/fuzz/$$t-replay.log \
	    || { tail -40 $(BUILD)/fuzz/$$t-replay.log; exit 1; }; \
	    echo "fuzz $$t: $(FUZZ_SECONDS) s"; \
	    $(BUILD)/fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -dict=t/fuzz/$$t.dict -artifact_prefix=$(BUILD)/fuzz/$$t- \
	        $(BUILD)/fuzz/$$t-corpus t/fuzz/corpus/$$t \
	        2>$(BUILD)/fuzz/$$t.log \
	    || { tail -60 $(BUILD)/fuzz/$$t.log; exit 1; }; \
	    grep -E '^Done|^#[0-9]+.*DONE' $(BUILD)/fuzz/$$t.log | tail -1; \
	done

# The OpenAPI tools and page: a validator for docs/openapi.yaml, and
# build/swagger-ui/, Swagger UI showing a copy of it (make run serves it at
# /docs/).  Installed once; again only when NPM_PKGS changes.
docs-tools: $(SWAGGER_UI)/openapi.yaml

# rewritten only when the list changes, so that its date says when it did
$(NPM_DIR)/packages: FORCE
	@mkdir -p $(@D)
	@echo '$(NPM_PKGS)' | cmp -s - $@ || echo '$(NPM_PKGS)' >$@

# --ignore-scripts: swagger-ui-dist's dependency @scarf/scarf would report
# the installation to its vendor; no package here needs a script
$(NPM_DIR)/installed: $(NPM_DIR)/packages
	@command -v npm >/dev/null || { echo "npm is missing: make deps" >&2; \
	    exit 1; }
	rm -rf $(NPM_DIR)/node_modules $@
	SCARF_ANALYTICS=false npm install --prefix $(NPM_DIR) --no-save \
	    --no-audit --no-fund --ignore-scripts --loglevel=error $(NPM_PKGS)
	touch $@

$(SWAGGER_UI)/index.html: $(NPM_DIR)/installed
	rm -rf $(SWAGGER_UI) $(SWAGGER_UI).tmp
	mkdir -p $(SWAGGER_UI).tmp
	cd $(NPM_DIR)/node_modules/swagger-ui-dist && \
	    cp index.html index.css swagger-ui.css swagger-ui-bundle.js \
	       swagger-ui-standalone-preset.js favicon-16x16.png \
	       favicon-32x32.png oauth2-redirect.html oauth2-redirect.js \
	       LICENSE NOTICE $(SWAGGER_UI).tmp/
	printf '%s\n' \
	    '// generated by make docs-tools: the API of this directory' \
	    'window.onload = function () {' \
	    '    window.ui = SwaggerUIBundle({' \
	    '        url: "openapi.yaml",' \
	    '        dom_id: "#swagger-ui",' \
	    '        deepLinking: true,' \
	    '        validatorUrl: null,' \
	    '        presets: [' \
	    '            SwaggerUIBundle.presets.apis,' \
	    '            SwaggerUIStandalonePreset' \
	    '        ],' \
	    '        plugins: [SwaggerUIBundle.plugins.DownloadUrl],' \
	    '        layout: "StandaloneLayout"' \
	    '    });' \
	    '};' >$(SWAGGER_UI).tmp/swagger-initializer.js
	sed -i 's|<title>Swagger UI</title>|<title>Inventory API</title>|' \
	    $(SWAGGER_UI).tmp/index.html
	mv $(SWAGGER_UI).tmp $(SWAGGER_UI)

$(SWAGGER_UI)/openapi.yaml: docs/openapi.yaml $(SWAGGER_UI)/index.html
	cp docs/openapi.yaml $@.tmp && mv $@.tmp $@

FORCE:


test: deps
	$(MAKE) module unit asan
	$(MAKE) test-e2e
	$(MAKE) test-asan
	$(MAKE) fuzz
	$(MAKE) bench-smoke

# The benchmark suite: medians of 3 runs of 10 s, as docs/BENCHMARKS.md has.
bench: deps module
	bench/run

# One short run of every scenario, so that the suite cannot rot.
bench-smoke: module
	bench/run --smoke

test-e2e: module unit docs-tools
	prove -I t/lib t/

# The whole suite again with the module built with ASan and UBSan.
test-asan: asan unit docs-tools
	rm -rf $(BUILD)/asan-log && mkdir -p $(BUILD)/asan-log && \
	chmod 0777 $(BUILD)/asan-log && \
	INVENTORY_MODULE=$(ASAN_MODULE) \
	INVENTORY_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	INVENTORY_ASAN_LOG=$(BUILD)/asan-log \
	prove -I t/lib t/

# The Debian package, as Debian's libnginx-mod-* are built (debian/build-deb):
# build/libnginx-mod-http-inventory_VERSION_ARCH.deb; DEB_VERSION=... sets
# the version (default: from git describe).
deb: deb-deps
	debian/build-deb

run: deps module docs-tools
	mkdir -p var/data var/logs var/tmp
	@echo "serving http://127.0.0.1:8080/v1/ and the API's page" \
	    "http://127.0.0.1:8080/docs/ (Ctrl-C stops)"
	exec nginx -p $(CURDIR)/ -c conf/nginx.conf -g 'daemon off;'

clean:
	rm -rf build
