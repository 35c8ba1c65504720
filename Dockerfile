# ngx_http_inventory_module on Debian 12's nginx, as `make run` serves it.
#   docker build -t inventory .
#   docker run -p 8080:8080 -v inventory-data:/srv/inventory/var inventory
FROM debian:12

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx nginx-dev liblmdb-dev libyajl-dev lmdb-utils gcc make curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/inventory
COPY config Makefile ./
COPY src ./src
COPY conf ./conf
RUN make module && mkdir -p var/data var/logs var/tmp

VOLUME /srv/inventory/var
EXPOSE 8080

# listen on all interfaces inside the container
RUN sed -i 's/listen 127.0.0.1:8080;/listen 8080;/' conf/nginx.conf

HEALTHCHECK --interval=10s --timeout=3s \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/v1/health || exit 1

CMD ["nginx", "-p", "/srv/inventory/", "-c", "conf/nginx.conf", \
     "-g", "daemon off;"]
