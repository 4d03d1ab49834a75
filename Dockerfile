# tsgate container image: a TLS/GSSAPI tunnel gateway sidecar.
#
#   podman build --isolation=chroot --pull=never -t tsgate .   (or docker build -t tsgate .)
#
# Mount your config at /etc/tsgate/tsgate.yaml (certificates, keys and
# keytabs beside it). The image has no configuration of its own: without
# the mount tsgate exits 1 with a message naming that path, opens no port,
# and the health check fails, so a forgotten mount exposes nothing.

# ---- build stage: compile, run the unit suite, install into /staging ----
# (the unit suite makes its certificates and KDC with the real tools)
FROM docker.io/library/debian:bookworm AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	gcc libc6-dev meson ninja-build pkg-config \
	libtalloc-dev libtevent-dev libgnutls28-dev libkrb5-dev libyaml-dev \
	libc-ares-dev \
	check gnutls-bin openssl krb5-kdc krb5-admin-server krb5-user \
	python3 procps ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN meson setup /build /src --prefix=/usr \
	--libdir="lib/$(gcc -print-multiarch)" --buildtype=release \
	-Dtests=enabled -Dwerror=true >/dev/null \
 && meson compile -C /build >/dev/null \
 && meson test -C /build --suite unit --num-processes 2 --print-errorlogs \
 && DESTDIR=/staging meson install -C /build --no-rebuild >/dev/null

# ---- runtime stage: the daemon and its runtime libraries only ----
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	libtalloc2 libtevent0 libgnutls30 libgssapi-krb5-2 libkrb5-3 \
	libyaml-0-2 libc-ares2 ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && groupadd --system --gid 10001 tsgate \
 && useradd --system --uid 10001 --gid tsgate --home-dir /nonexistent \
	--shell /usr/sbin/nologin tsgate
COPY --from=build /staging/usr/bin/tsgate /usr/bin/tsgate
COPY --from=build /staging/usr/lib/ /usr/lib/
USER tsgate:tsgate
VOLUME ["/etc/tsgate"]
EXPOSE 8443 9100
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
	CMD ["/usr/bin/tsgate", "--health", "--config", "/etc/tsgate/tsgate.yaml"]
ENTRYPOINT ["/usr/bin/tsgate", "--config", "/etc/tsgate/tsgate.yaml"]
