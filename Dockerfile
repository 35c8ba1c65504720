# ngx_http_inventory_module on Debian 12's nginx, as `make run` serves it:
# the same conf/nginx.conf (listening on all interfaces), the same prefix
# layout, data under var/ (a volume), run by an unprivileged user.
#
#   docker build -t inventory .
#   docker run -p 8080:8080 -v inventory-var:/srv/inventory/var inventory
#
# docs/operations.md ("Docker") explains it; t/65-docker.t runs what the
# image runs (the same commands, as a non-root user) without Docker.
FROM debian:12

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx nginx-dev liblmdb-dev libyajl-dev lmdb-utils gcc make curl \
      npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/inventory
COPY config Makefile ./
COPY src ./src
COPY conf ./conf
COPY docs/openapi.yaml ./docs/openapi.yaml

# the module, the admin tool and the API page (/docs/), as make run builds
RUN make module docs-tools

# listen on all interfaces inside the container
RUN sed -i 's/listen 127.0.0.1:8080;/listen 8080;/' conf/nginx.conf

# nginx runs as this user, master and workers alike: it owns var/ only
RUN useradd --system --home-dir /srv/inventory --shell /usr/sbin/nologin \
      inventory \
 && mkdir -p var/data var/logs var/tmp \
 && chown -R inventory:inventory var

USER inventory
VOLUME /srv/inventory/var
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/v1/health || exit 1

# -e stderr: the built-in error log path (/var/log/nginx) is root's
CMD ["nginx", "-p", "/srv/inventory/", "-c", "conf/nginx.conf", \
     "-e", "stderr", "-g", "daemon off;"]
