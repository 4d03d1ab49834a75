# tsgate container image: a TLS/GSSAPI tunnel gateway sidecar.
#
#   podman build --isolation=chroot --pull=never -t tsgate:0.1.0 .
#   (or docker build -t tsgate:0.1.0 .)
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
 && DESTDIR=/staging meson install -C /build --no-rebuild >/dev/null \
 && mkdir -p /runtime/usr/bin \
 && cp -a /staging/usr/bin/tsgate /runtime/usr/bin/ \
 && cd /staging && find usr/lib -name 'lib*.so.*' \
	-exec cp -a --parents {} /runtime \;
# /runtime: what the daemon needs at run time, nothing else (no headers,
# pkg-config files, development links, man pages or docs)

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
# (after the package layer, so a label change keeps that layer cached)
LABEL org.opencontainers.image.title="tsgate" \
      org.opencontainers.image.description="TLS/GSSAPI tunnel gateway (sidecar): terminates TLS or Kerberos and forwards plaintext to local services" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="the tsgate authors" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
COPY --from=build /runtime/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER tsgate:tsgate
# No VOLUME: the configuration is mounted read-only where the runtime is
# told to (an anonymous volume would hide a forgotten mount).
EXPOSE 8443 9100
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
	CMD ["/usr/bin/tsgate", "--health", "--config", "/etc/tsgate/tsgate.yaml"]
ENTRYPOINT ["tsgate"]
CMD ["--config", "/etc/tsgate/tsgate.yaml"]
