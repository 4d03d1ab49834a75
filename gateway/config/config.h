/* SPDX-License-Identifier: MIT */
/*
 * tsgate configuration: the typed form of the YAML file described in
 * docs/configuration.md, and the loader that fills it.
 *
 * Everything is allocated on one talloc tree whose root is the struct
 * tsgate_config returned by tsgate_config_load() (gateway/tunnel/
 * config_tunnels.h: it runs this library's walk and checks across fields,
 * then the credential checks). Loading never touches a
 * configuration already in use, so a reload (SIGHUP) loads into a fresh
 * tree, swaps the pointer on success and keeps the old tree on failure.
 *
 * Values are validated and normalised at load time:
 *  - file paths are absolute (relative ones are taken relative to the
 *    directory of the config file);
 *  - durations are milliseconds, sizes are bytes;
 *  - host names in addresses are resolved once, at load time;
 *  - defaults are filled in, so a reader never needs to know them.
 */
#ifndef TSGATE_CONFIG_H
#define TSGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <talloc.h>

/* Where a value came from in the YAML file (1-based; 0 when unknown). */
struct tsgate_config_mark {
	unsigned line;
	unsigned column;
};

/*
 * A value as written in the file and where: what a later pass (the
 * credential checks of gateway/tunnel/) needs to report at the right
 * place with the file's own words. text is NULL when the key was absent.
 */
struct tsgate_config_origin {
	const char *text;
	struct tsgate_config_mark mark;
};

/*
 * The log's vocabulary too (ops/log.h): in order of detail, so a line is
 * written when its level is <= the configured one.
 */
enum tsgate_config_log_level {
	TSGATE_CONFIG_LOG_ERROR = 0,
	TSGATE_CONFIG_LOG_WARNING,
	TSGATE_CONFIG_LOG_INFO,
	TSGATE_CONFIG_LOG_DEBUG,
};

enum tsgate_config_log_format {
	TSGATE_CONFIG_LOG_TEXT = 0,
	TSGATE_CONFIG_LOG_JSON,
};

enum tsgate_config_addr_kind {
	TSGATE_CONFIG_ADDR_TCP = 0,
	TSGATE_CONFIG_ADDR_UNIX,
};

/*
 * "tcp://HOST:PORT" (IPv6 literal in brackets) or "unix:/path".
 */
struct tsgate_config_addr {
	enum tsgate_config_addr_kind kind;
	/* The string as written in the file, for logs. */
	const char *text;
	/* TCP: the host as written, without brackets. */
	const char *host;
	/* TCP: the first resolved address as a canonical numeric string,
	 * ready for tsocket_address_inet_from_strings(mem_ctx, "ip", ip, port,
	 * ...). */
	const char *ip;
	/* TCP: every resolved address (ips[0] == ip), in resolver order. */
	const char **ips;
	size_t num_ips;
	uint16_t port;
	/* UNIX: absolute socket path. */
	const char *path;
	struct tsgate_config_mark mark;
};

enum tsgate_config_accept {
	TSGATE_CONFIG_ACCEPT_PLAIN = 0,
	TSGATE_CONFIG_ACCEPT_TLS,
	TSGATE_CONFIG_ACCEPT_GSSAPI,
	/* TLS, then a GSSAPI context bound to it; the data in TLS records */
	TSGATE_CONFIG_ACCEPT_TLS_GSSAPI,
};

enum tsgate_config_connect {
	TSGATE_CONFIG_CONNECT_PLAIN = 0,
	TSGATE_CONFIG_CONNECT_TLS,
	TSGATE_CONFIG_CONNECT_GSSAPI,
	TSGATE_CONFIG_CONNECT_TLS_GSSAPI,
};

/* How a route's relay cuts the stream into PDUs (datapath/framing.h). */
enum tsgate_config_framing {
	TSGATE_CONFIG_FRAMING_RAW = 0,  /* bytes as they come, up to a chunk */
	TSGATE_CONFIG_FRAMING_LENGTH32, /* 4-byte big-endian length + body */
	TSGATE_CONFIG_FRAMING_NBT,   /* type byte + 24-bit big-endian length */
	TSGATE_CONFIG_FRAMING_NCACN, /* DCE/RPC CO PDU, frag_length at 8 */
};

/*
 * A framed route's max_pdu when the file gives none: the largest PDU the
 * protocol a framing names can carry, so a default never refuses a PDU a
 * conforming peer sends (docs/protocols.md, "SMB and DCE/RPC sizes").
 * nbt: the 24-bit length of SMB2 over TCP (MS-SMB2 2.1) plus the 4-byte
 * header; ncacn: the 16-bit frag_length, which counts its own header;
 * length32: no protocol to size against (a 4-byte length may announce
 * 4 GiB), so a conservative 1 MiB that a custom protocol raises on purpose.
 */
#define TSGATE_CONFIG_MAX_PDU_NBT      (4 + 0xffffffULL)
#define TSGATE_CONFIG_MAX_PDU_NCACN    0xffffULL
#define TSGATE_CONFIG_MAX_PDU_LENGTH32 (1024ULL * 1024)

enum tsgate_config_identity {
	TSGATE_CONFIG_IDENTITY_NONE = 0,
	TSGATE_CONFIG_IDENTITY_PROXY_V2,
	TSGATE_CONFIG_IDENTITY_KNC,
};

enum tsgate_config_verify_client {
	TSGATE_CONFIG_VERIFY_NONE = 0,
	TSGATE_CONFIG_VERIFY_OPTIONAL,
	TSGATE_CONFIG_VERIFY_REQUIRE,
};

/* TLS protocol versions for min_version/max_version; 0 = library default */
/* listeners[].tls.record_layer: who runs TLS 1.3 records after the
 * handshake (tstream_tls's enum tstream_tls_record_layer) */
enum tsgate_config_record_layer {
	TSGATE_CONFIG_RECORD_DEFAULT = 0,
	TSGATE_CONFIG_RECORD_TSGATE,
	TSGATE_CONFIG_RECORD_GNUTLS,
};

enum tsgate_config_tls_version {
	TSGATE_CONFIG_TLS_DEFAULT = 0,
	TSGATE_CONFIG_TLS_1_2,
	TSGATE_CONFIG_TLS_1_3,
};

/* One server certificate; sni == NULL for the default one. */
struct tsgate_config_tls_cert {
	const char *sni;  /* a host name or "*.domain" (one wildcard label) */
	const char *cert; /* absolute path, PEM */
	const char *key;  /* absolute path, PEM */
	/* DER OCSP response stapled with this certificate, or NULL */
	const char *ocsp_response;
	struct tsgate_config_mark mark;
	struct tsgate_config_origin cert_at;
	struct tsgate_config_origin key_at;
	struct tsgate_config_origin ocsp_at;
};

/* listeners[].tls (accept: tls) */
struct tsgate_config_tls_server {
	/* At least one, in the order of the file. The first entry with
	 * sni == NULL is the default, otherwise certs[0] is. Several entries
	 * may share a name (or lack one): e.g. an ECDSA and an RSA chain. */
	struct tsgate_config_tls_cert *certs;
	size_t num_certs;
	const char *client_ca; /* absolute path or NULL */
	const char *crl;       /* absolute path or NULL */
	/* Default: REQUIRE when client_ca is given, NONE otherwise. */
	enum tsgate_config_verify_client verify_client;
	const char **alpn; /* protocol names in preference order */
	size_t num_alpn;
	const char *priority; /* GnuTLS priority string or NULL (default) */
	enum tsgate_config_tls_version min_version;
	enum tsgate_config_tls_version max_version;
	/* an end without close_notify from the client is truncation */
	bool strict_end;
	/* session tickets (default true) */
	bool session_resumption;
	/* ticket lifetime; 0: the TLS library's (4 h, keys rotate every
	 * 3 lifetimes) */
	uint64_t session_lifetime_ms;
	/* HAProxy tls-ticket-keys file (absolute path) or NULL: a key
	 * made at start, shared by the workers */
	const char *ticket_keys_file;
	enum tsgate_config_record_layer record_layer;
	/* our KeyUpdate after this many records; 0: the library's */
	uint32_t key_update_records;
	struct tsgate_config_mark mark;
	struct tsgate_config_origin ticket_keys_at;
	struct tsgate_config_origin client_ca_at;
	struct tsgate_config_origin crl_at;
	struct tsgate_config_origin priority_at;
	/* The walk found a problem in this block: the credential pass does
	 * not ask the TLS library about it too (it would repeat it). */
	bool walk_errors;
};

/* listeners[].gssapi (accept: gssapi) */
struct tsgate_config_gssapi_server {
	const char *keytab;    /* absolute path (no "FILE:" prefix) */
	const char *principal; /* acceptor name or NULL (any in keytab) */
	/* a bare FIN from the client is truncation, not end of stream */
	bool strict_end;
	struct tsgate_config_mark mark;
	struct tsgate_config_origin keytab_at;
	struct tsgate_config_origin principal_at;
};

/* routes[].tls (connect: tls) */
struct tsgate_config_tls_client {
	const char *ca;   /* absolute path, or NULL for the system trust */
	const char *crl;  /* absolute path or NULL */
	const char *sni;  /* server name sent; default the backend host
			   * when it is a name (not an IP literal), else NULL */
	const char *cert; /* client certificate (absolute path) or NULL */
	const char *key;  /* its key; set exactly when cert is set */
	const char **alpn;
	size_t num_alpn;
	/* Name the server certificate must match; default sni, else the
	 * backend host (an IP literal is matched against IP SANs). */
	const char *verify_name;
	/* sni / verify_name are the backend's host (not written): each
	 * backend of a pool sends and verifies its own */
	bool sni_from_backend;
	bool verify_name_from_backend;
	bool verify; /* false only with "verify: false" (insecure) */
	const char *priority;
	enum tsgate_config_tls_version min_version;
	enum tsgate_config_tls_version max_version;
	/* an end without close_notify from the backend is truncation */
	bool strict_end;
	/* keep the backend's latest session and resume it (default true) */
	bool session_resumption;
	struct tsgate_config_mark mark;
	struct tsgate_config_origin ca_at;
	struct tsgate_config_origin crl_at;
	struct tsgate_config_origin cert_at;
	struct tsgate_config_origin key_at;
	struct tsgate_config_origin priority_at;
	/* The walk found a problem in this route: the credential pass does
	 * not ask the TLS library about the block (it would repeat it). */
	bool walk_errors;
};

/* routes[].gssapi (connect: gssapi) */
struct tsgate_config_gssapi_client {
	const char *target; /* "service@host" (GSS_C_NT_HOSTBASED_SERVICE) */
	/* At most one of these; neither = the default ccache. */
	const char *ccache;        /* as written, e.g. "FILE:/tmp/krb5cc_app" */
	const char *client_keytab; /* absolute path */
	/* a bare FIN from the backend is truncation, not end of stream */
	bool strict_end;
	/* request credential delegation (GSS_C_DELEG_FLAG); needs a
	 * forwardable TGT */
	bool delegate;
	struct tsgate_config_mark mark;
	struct tsgate_config_origin client_keytab_at;
};

enum tsgate_config_san_type {
	TSGATE_CONFIG_SAN_DNS = 0,
	TSGATE_CONFIG_SAN_IP,
	TSGATE_CONFIG_SAN_URI,
	TSGATE_CONFIG_SAN_EMAIL,
};

struct tsgate_config_san {
	enum tsgate_config_san_type type;
	const char *value; /* after the "DNS:" etc. prefix; may hold '*' */
};

/*
 * routes[].match: every key that is given must hold; a key given as a
 * list holds when any of its values matches. Values may use '*'
 * wildcards (any run of characters, including none). A key with
 * num_X == 0 was not given. A route with has_match == false (or with an
 * empty match) matches every connection.
 */
struct tsgate_config_match {
	bool has_match;
	const char **sni;
	size_t num_sni;
	const char **alpn;
	size_t num_alpn;
	const char **client_subject; /* RFC 4514 DN, as GnuTLS prints it */
	size_t num_client_subject;
	struct tsgate_config_san *client_san;
	size_t num_client_san;
	const char **principal; /* e.g. "*@EXAMPLE.COM" */
	size_t num_principal;
	struct tsgate_config_mark mark;
};

/* How a route with several backends picks one for a new connection. */
enum tsgate_config_balance {
	TSGATE_CONFIG_BALANCE_ROUND_ROBIN = 0,
	TSGATE_CONFIG_BALANCE_FIRST, /* in order: failover */
	TSGATE_CONFIG_BALANCE_LEAST_CONNECTIONS,
};

/* tcp_keepalive of a listener (client side) or a route (backend side). */
struct tsgate_config_keepalive {
	bool enabled;        /* default true */
	uint32_t idle_s;     /* TCP_KEEPIDLE, default 60 */
	uint32_t interval_s; /* TCP_KEEPINTVL, default 15 */
	uint32_t count;      /* TCP_KEEPCNT, default 4 */
};

/* routes[].health_check: active checks of each backend. */
struct tsgate_config_health_check {
	uint64_t interval_ms; /* 0: no active checks (the default) */
	uint64_t timeout_ms;  /* default: the route's connect timeout */
};

struct tsgate_config_route {
	/* As written, or "route-N" (N 1-based within the listener). */
	const char *name;
	struct tsgate_config_match match;
	/* The first of backends[] (the only one for a single address). */
	struct tsgate_config_addr backend;
	/*
	 * Every backend, in the order written (at least one). A TCP host
	 * name has num_ips == 0 here when 'resolvers' is set: the worker
	 * resolves it.
	 */
	struct tsgate_config_addr *backends;
	size_t num_backends;
	enum tsgate_config_balance balance; /* default round-robin */
	/* 0: limits.connect_timeout; per backend tried */
	uint64_t connect_timeout_ms;
	bool has_idle_timeout; /* idle_timeout_ms overrides limits */
	uint64_t idle_timeout_ms;
	/* host names are resolved again this often (default 30 s) */
	uint64_t resolve_interval_ms;
	struct tsgate_config_health_check health_check;
	struct tsgate_config_keepalive keepalive;
	enum tsgate_config_connect connect;
	struct tsgate_config_tls_client *tls;       /* connect: tls only */
	struct tsgate_config_gssapi_client *gssapi; /* connect: gssapi only */
	enum tsgate_config_framing framing;         /* default raw */
	uint64_t max_pdu;                           /* default by framing */
	enum tsgate_config_identity identity;       /* default none */
	/*
	 * backend: "exec:/path": a program per connection (datapath/exec.c)
	 * instead of a socket; then backend.text is the string as written
	 * and the other backend fields are unset. NULL for socket backends.
	 */
	const char *exec;
	const char **exec_args; /* argv[1..] (args:), may be empty */
	size_t num_exec_args;
	/* exec only: programs running at once (per worker); 0: no limit */
	uint32_t max_connections;
	/* exec only: where delegated credentials go; NULL: the default */
	const char *ccache_dir;
	struct tsgate_config_mark mark;
};

struct tsgate_config_listener {
	const char *name; /* unique among listeners */
	struct tsgate_config_addr listen;
	enum tsgate_config_accept accept;
	struct tsgate_config_tls_server *tls;       /* accept: tls only */
	struct tsgate_config_gssapi_server *gssapi; /* accept: gssapi only */
	/* 0 = only the global limits.max_connections applies. */
	uint32_t max_connections;
	/* accept: plain on a non-loopback TCP address is allowed (default
	 * false: such a listener is a config error) */
	bool allow_plain_public;
	struct tsgate_config_keepalive keepalive; /* on accepted sockets */
	/* First match wins; at least one. */
	struct tsgate_config_route *routes;
	size_t num_routes;
	struct tsgate_config_mark mark;
};

struct tsgate_config_limits {
	uint32_t max_connections; /* default 10000 */
	/*
	 * Connections at once from one client source, per worker; 0 = no
	 * limit (the default: behind a load balancer or in a sidecar every
	 * client shares one source). TCP listeners only.
	 */
	uint32_t max_connections_per_source;
	/* Bits of an IPv6 client address that make its source (default 64) */
	uint32_t per_source_ipv6_prefix;
	uint64_t handshake_timeout_ms; /* default 10 s */
	uint64_t idle_timeout_ms;      /* default 300 s; 0 = none */
	uint64_t shutdown_grace_ms;    /* default 30 s */
	uint64_t connect_timeout_ms;   /* backend connect, default 10 s */
	/*
	 * Threads for the GSSAPI calls that can wait on the KDC, a keytab
	 * or a ccache, per worker (default 4); 0: on the event loop.
	 */
	uint32_t gssapi_threads;
};

struct tsgate_config {
	const char *path; /* the config file, as given to the loader */
	const char *dir;  /* absolute directory relative paths are based on */
	struct {
		enum tsgate_config_log_level level;   /* default info */
		enum tsgate_config_log_format format; /* default text */
	} log;
	uint32_t workers; /* default 1 */
	/* Drop to this user (and its primary group) after binding; NULL =
	 * stay. uid/gid are looked up at load time. */
	const char *user;
	uid_t uid;
	gid_t gid;
	/* group: this group instead of the user's primary one (needs user) */
	const char *group;
	/*
	 * allow_insecure_key_permissions: accept private keys and keytabs
	 * that others can read, or that another non-root user owns
	 * (default false: such a file is an error, checked with
	 * TSGATE_CONFIG_CHECK_CREDENTIALS).
	 */
	bool allow_insecure_key_permissions;
	/*
	 * DNS servers ("IP" or "IP:PORT") the workers ask for backend host
	 * names; none: the system's (/etc/resolv.conf, /etc/hosts).
	 */
	const char **resolvers;
	size_t num_resolvers;
	/* NULL when no metrics listener is configured. */
	struct tsgate_config_addr *metrics_listen;
	struct tsgate_config_limits limits;
	/*
	 * reload: watching the credential files the config names (the
	 * daemon's cred_watch.c); a change reloads as SIGHUP does.
	 */
	struct {
		bool watch;           /* default true */
		uint64_t interval_ms; /* the fallback check, default 30 s */
	} reload;
	struct tsgate_config_listener *listeners; /* at least one */
	size_t num_listeners;
};

/* One problem found while loading. */
struct tsgate_config_error {
	const char *file; /* the config file as given (never NULL) */
	unsigned line;    /* 1-based, 0 when the error has no position */
	unsigned column;  /* 1-based, 0 when the error has no position */
	const char *message;
};

struct tsgate_config_errors {
	struct tsgate_config_error *errors; /* in file order */
	size_t num_errors;
};

/* Loader flags */

/*
 * Also load every certificate, key, CRL and keytab the way the tunnels
 * will (key matches certificate, certificate not expired, keytab has
 * keys for the principal) — what --check-config does. Without it the
 * loader only checks that the files exist and are readable.
 */
#define TSGATE_CONFIG_CHECK_CREDENTIALS 0x1u
/* Do not resolve host names (numeric addresses only); for tests/fuzzing. */
#define TSGATE_CONFIG_NO_RESOLVE 0x2u
/* tsgate_config_parse_address: a host name is checked, not resolved */
#define TSGATE_CONFIG_DEFER_RESOLVE 0x4u

/*
 * Loading runs in passes over one load in progress: this library's walk
 * (YAML into the structs, then the checks across fields on the finished
 * structs), then the credential checks of gateway/tunnel/, which report
 * into the same error list at the positions the walk recorded. Callers
 * load with tsgate_config_load() (gateway/tunnel/config_tunnels.h), which
 * runs every pass; the functions below are for the passes themselves.
 */
struct tsgate_config_load;

/**
 * @brief The first pass: read path (or buf) and walk it.
 *
 * @return 0 with *pload set, whatever the file holds (its problems are
 *         recorded in the load), or ENOMEM.
 */
int tsgate_config_parse(TALLOC_CTX *mem_ctx,
			const char *path,
			unsigned flags,
			struct tsgate_config_load **pload);

/* Like tsgate_config_parse() from a buffer; see tsgate_config_load_buffer(). */
int tsgate_config_parse_buffer(TALLOC_CTX *mem_ctx,
			       const char *name,
			       const char *base_dir,
			       const uint8_t *buf,
			       size_t len,
			       unsigned flags,
			       struct tsgate_config_load **pload);

/*
 * The config as walked. Where the walk found an error the structs are
 * partial (a field left NULL or at its default), so a later pass checks
 * only what is there.
 */
const struct tsgate_config *tsgate_config_load_config(
    const struct tsgate_config_load *load);
unsigned tsgate_config_load_flags(const struct tsgate_config_load *load);
/* Scratch memory, freed when the load ends. */
TALLOC_CTX *tsgate_config_load_tmp(struct tsgate_config_load *load);

/* Record a problem at mark (line 0: none); kept in file order. */
void tsgate_config_load_error(struct tsgate_config_load *load,
			      struct tsgate_config_mark mark,
			      const char *fmt,
			      ...) __attribute__((format(__printf__, 3, 4)));

/**
 * @brief End a load (and free it): the config, or every error in file
 * order. Returns as tsgate_config_load().
 */
int tsgate_config_load_finish(TALLOC_CTX *mem_ctx,
			      struct tsgate_config_load *load,
			      struct tsgate_config **pconfig,
			      struct tsgate_config_errors **perrors);

/**
 * @brief Format one error as "FILE:LINE:COL: message" (or "FILE: message"
 * when it has no position).
 */
char *tsgate_config_error_string(TALLOC_CTX *mem_ctx,
				 const struct tsgate_config_error *err);

/* Names of enum values, as written in the YAML file. */
const char *tsgate_config_accept_name(enum tsgate_config_accept a);
const char *tsgate_config_balance_name(enum tsgate_config_balance b);
const char *tsgate_config_connect_name(enum tsgate_config_connect c);
const char *tsgate_config_framing_name(enum tsgate_config_framing f);
const char *tsgate_config_identity_name(enum tsgate_config_identity i);

/* The max_pdu of a route of this framing that sets none (raw: unused). */
uint64_t tsgate_config_framing_default_max_pdu(enum tsgate_config_framing f);

/*
 * A log level by the name the file takes for 'log: level:' (for
 * --log-level and TSGATE_LOG_LEVEL): 0, or EINVAL for an unknown name.
 */
int tsgate_config_log_level_parse(const char *name,
				  enum tsgate_config_log_level *level);

/*
 * Value parsers, also used by the loader. Each returns NULL on success,
 * or an error message (allocated on mem_ctx) saying what is wrong.
 */

/* "250ms", "10s", "5m", "1h"; a plain integer is seconds. */
const char *tsgate_config_parse_duration(TALLOC_CTX *mem_ctx,
					 const char *s,
					 uint64_t *ms);

/* "512", "64KiB", "1MiB", "1GiB"; a plain integer is bytes. */
const char *tsgate_config_parse_size(TALLOC_CTX *mem_ctx,
				     const char *s,
				     uint64_t *bytes);

/*
 * "tcp://HOST:PORT" or "unix:PATH". A relative unix path is made absolute
 * against base_dir. Host names are resolved unless flags has
 * TSGATE_CONFIG_NO_RESOLVE (then only IP literals are accepted). Fills
 * *addr (strings allocated on mem_ctx); addr->mark is left alone.
 */
const char *tsgate_config_parse_address(TALLOC_CTX *mem_ctx,
					const char *s,
					const char *base_dir,
					unsigned flags,
					struct tsgate_config_addr *addr);

/*
 * Resolve addr->host (a TCP address parsed with
 * TSGATE_CONFIG_DEFER_RESOLVE) with the system resolver into addr->ips.
 * Returns an error message or NULL.
 */
const char *tsgate_config_resolve_address(TALLOC_CTX *mem_ctx,
					  unsigned flags,
					  struct tsgate_config_addr *addr);

/*
 * '*' wildcard match (any run of characters, including none), case
 * sensitive unless nocase. Shared with route matching so the loader's
 * "route can never match" check and the data path agree.
 */
bool tsgate_config_wildcard_match(const char *pattern,
				  const char *value,
				  bool nocase);

#endif
