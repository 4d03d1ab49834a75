/* SPDX-License-Identifier: MIT */
/*
 * Identity hand-off: PROXY protocol v2 headers and knc KEY:VALUE lines.
 */
#include "identity.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <tsocket.h>

/* meson passes the project version; "VERSION:" names tsgate, not knc */
#ifndef TSGATE_VERSION
#define TSGATE_VERSION "0.1.0"
#endif
#define TSGATE_KNC_VERSION "tsgate-" TSGATE_VERSION

struct pp2_buf {
	uint8_t *data;
	size_t len;
	int err;
};

static void pp2_put(struct pp2_buf *b, const void *p, size_t n)
{
	uint8_t *d;

	if (b->err != 0 || n == 0) {
		return;
	}
	d = talloc_realloc(NULL, b->data, uint8_t, b->len + n);
	if (d == NULL) {
		b->err = ENOMEM;
		return;
	}
	b->data = d;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void pp2_put_u8(struct pp2_buf *b, uint8_t v)
{
	pp2_put(b, &v, 1);
}

static void pp2_put_u16(struct pp2_buf *b, uint16_t v)
{
	uint8_t x[2] = {v >> 8, v & 0xff};

	pp2_put(b, x, 2);
}

static void pp2_tlv(struct pp2_buf *b,
		    uint8_t type,
		    const void *value,
		    size_t n)
{
	if (n > 0xffff) {
		b->err = EMSGSIZE;
		return;
	}
	pp2_put_u8(b, type);
	pp2_put_u16(b, (uint16_t)n);
	pp2_put(b, value, n);
}

static void pp2_tlv_str(struct pp2_buf *b, uint8_t type, const char *s)
{
	if (s == NULL || *s == '\0') {
		return;
	}
	pp2_tlv(b, type, s, strlen(s));
}

static int sockaddr_of(const struct tsocket_address *addr,
		       struct sockaddr_storage *ss)
{
	ssize_t n;

	memset(ss, 0, sizeof(*ss));
	if (addr == NULL) {
		return -1;
	}
	n = tsocket_address_bsd_sockaddr(addr, (struct sockaddr *)ss,
					 sizeof(*ss));
	if (n < 0) {
		return -1;
	}
	/*
	 * A dual-stack listener ([::]) sees IPv4 clients as ::ffff:a.b.c.d.
	 * Hand them on as the IPv4 addresses they are (as a backend that
	 * checks "127.0.0.1" expects).
	 */
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			struct sockaddr_in s4 = {.sin_family = AF_INET};

			s4.sin_port = s6->sin6_port;
			memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
			memset(ss, 0, sizeof(*ss));
			memcpy(ss, &s4, sizeof(s4));
		}
	}
	return 0;
}

/*
 * HAProxy writes OpenSSL's names ("TLSv1.3"); GnuTLS says "TLS1.3".
 * Backends compare strings, so speak OpenSSL's dialect.
 */
static const char *pp2_tls_version(TALLOC_CTX *mem_ctx, const char *v)
{
	if (v != NULL && strncmp(v, "TLS1.", 5) == 0) {
		return talloc_asprintf(mem_ctx, "TLSv%s", v + 3);
	}
	return v;
}

/* An IPv4 address as IPv6 (::ffff:a.b.c.d), port kept. */
static void v4_to_v6(struct sockaddr_storage *ss)
{
	const struct sockaddr_in s4 = *(const struct sockaddr_in *)ss;
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};

	s6.sin6_port = s4.sin_port;
	s6.sin6_addr.s6_addr[10] = 0xff;
	s6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&s6.sin6_addr.s6_addr[12], &s4.sin_addr, 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &s6, sizeof(s6));
}

static bool is_inet(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET || ss->ss_family == AF_INET6;
}

/*
 * The command, family and address block. Only TCP4 and TCP6 are
 * addresses a consumer uses: HAProxy (2.6 to 3.x, conn_recv_proxy)
 * fails a PROXY command of any other family as a bad header, and nginx
 * (ngx_proxy_protocol_v2_read) skips such a header. Both accept LOCAL
 * with UNSPEC and keep their own view of the connection, and HAProxy
 * (3.0 on) still reads the TLVs after it. That is also what HAProxy
 * itself sends for a unix-socket client, so a unix client gets LOCAL.
 */
static void pp2_addresses(struct pp2_buf *b,
			  const struct tsgate_peer_info *info,
			  uint8_t *ver_cmd,
			  uint8_t *fam)
{
	struct sockaddr_storage src, dst;
	bool have = sockaddr_of(info->remote, &src) == 0 &&
		    sockaddr_of(info->local, &dst) == 0;

	*ver_cmd = PP2_VERSION_LOCAL;
	*fam = PP2_FAM_UNSPEC;
	if (!have || !is_inet(&src) || !is_inet(&dst)) {
		return;
	}
	*ver_cmd = PP2_VERSION_PROXY;
	if (src.ss_family != dst.ss_family) {
		/* one end IPv4, the other IPv6: both as IPv6 */
		if (src.ss_family == AF_INET) {
			v4_to_v6(&src);
		} else {
			v4_to_v6(&dst);
		}
	}
	if (src.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)&src;
		const struct sockaddr_in *d = (const void *)&dst;

		*fam = PP2_FAM_TCP4;
		pp2_put(b, &s->sin_addr, 4);
		pp2_put(b, &d->sin_addr, 4);
		pp2_put(b, &s->sin_port, 2); /* already network order */
		pp2_put(b, &d->sin_port, 2);
	} else {
		const struct sockaddr_in6 *s = (const void *)&src;
		const struct sockaddr_in6 *d = (const void *)&dst;

		*fam = PP2_FAM_TCP6;
		pp2_put(b, &s->sin6_addr, 16);
		pp2_put(b, &d->sin6_addr, 16);
		pp2_put(b, &s->sin6_port, 2);
		pp2_put(b, &d->sin6_port, 2);
	}
}

static void pp2_ssl(struct pp2_buf *b, const struct tsgate_peer_info *info)
{
	struct pp2_buf sub = {0};
	uint8_t client = PP2_CLIENT_SSL;
	uint32_t verify;
	uint8_t head[5];
	TALLOC_CTX *tmp = talloc_new(NULL);

	if (tmp == NULL) {
		b->err = ENOMEM;
		return;
	}
	if (info->client_cert) {
		client |= PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS;
	}
	/*
	 * 0 only for a presented certificate that verified (spec 2.2.5) and
	 * whose names can be trusted: a backend that takes "verify == 0" for
	 * "authenticated" must not take a NUL-bearing name's certificate so.
	 */
	verify = (info->client_cert && info->cert_verified &&
		  info->client_name_error == NULL)
		     ? 0
		     : 1;
	head[0] = client;
	head[1] = verify >> 24;
	head[2] = (verify >> 16) & 0xff;
	head[3] = (verify >> 8) & 0xff;
	head[4] = verify & 0xff;
	pp2_put(&sub, head, sizeof(head));
	pp2_tlv_str(&sub, PP2_SUBTYPE_SSL_VERSION,
		    pp2_tls_version(tmp, info->tls_version));
	if (info->client_cert && info->client_name_error == NULL) {
		pp2_tlv_str(&sub, PP2_SUBTYPE_SSL_CN, info->client_cn);
	}
	pp2_tlv_str(&sub, PP2_SUBTYPE_SSL_CIPHER, info->tls_cipher);
	if (sub.err != 0) {
		b->err = sub.err;
	} else {
		pp2_tlv(b, PP2_TYPE_SSL, sub.data, sub.len);
	}
	talloc_free(sub.data);
	talloc_free(tmp);
}

int tsgate_identity_proxy_v2(TALLOC_CTX *mem_ctx,
			     const struct tsgate_peer_info *info,
			     uint8_t **pbuf,
			     size_t *plen)
{
	struct pp2_buf body = {0};
	struct pp2_buf out = {0};
	uint8_t ver_cmd, fam;
	int err;

	pp2_addresses(&body, info, &ver_cmd, &fam);
	pp2_tlv_str(&body, PP2_TYPE_ALPN, info->alpn);
	pp2_tlv_str(&body, PP2_TYPE_AUTHORITY, info->sni);
	if (info->tls) {
		pp2_ssl(&body, info);
	}
	if (info->gssapi) {
		pp2_tlv_str(&body, PP2_TYPE_TSGATE_PRINCIPAL, info->principal);
		pp2_tlv_str(&body, PP2_TYPE_TSGATE_LOCALNAME, info->local_name);
		pp2_tlv_str(&body, PP2_TYPE_TSGATE_MECH, info->mech);
	}
	if (body.err == 0 && body.len > 0xffff) {
		body.err = EMSGSIZE;
	}

	pp2_put(&out, PP2_SIGNATURE, PP2_SIGNATURE_LEN);
	pp2_put_u8(&out, ver_cmd);
	pp2_put_u8(&out, fam);
	pp2_put_u16(&out, (uint16_t)body.len);
	pp2_put(&out, body.data, body.len);
	talloc_free(body.data);

	err = body.err != 0 ? body.err : out.err;
	if (err != 0) {
		talloc_free(out.data);
		return err;
	}
	*pbuf = talloc_steal(mem_ctx, out.data);
	*plen = out.len;
	return 0;
}

static int knc_line(char **buf, const char *key, const char *value)
{
	if (value == NULL) {
		return 0;
	}
	if (strchr(value, '\n') != NULL) {
		return EINVAL;
	}
	*buf = talloc_asprintf_append_buffer(*buf, "%s:%s\n", key, value);
	return *buf == NULL ? ENOMEM : 0;
}

static char *hex_upper(TALLOC_CTX *mem_ctx, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789ABCDEF";
	char *s = talloc_array(mem_ctx, char, n * 2 + 1);
	size_t i;

	if (s == NULL) {
		return NULL;
	}
	for (i = 0; i < n; i++) {
		s[2 * i] = digits[p[i] >> 4];
		s[2 * i + 1] = digits[p[i] & 0x0f];
	}
	s[2 * n] = '\0';
	return s;
}

int tsgate_identity_knc(TALLOC_CTX *mem_ctx,
			const struct tsgate_peer_info *info,
			uint8_t **pbuf,
			size_t *plen)
{
	TALLOC_CTX *tmp = talloc_new(NULL);
	char *buf = talloc_strdup(tmp, "");
	const char *addr = NULL, *port = NULL;
	struct sockaddr_storage ss;
	bool v4 = false, v6 = false;
	int err = 0;

	if (tmp == NULL || buf == NULL) {
		talloc_free(tmp);
		return ENOMEM;
	}
	if (info->remote != NULL &&
	    tsocket_address_is_inet(info->remote, "ip") &&
	    sockaddr_of(info->remote, &ss) == 0) {
		char text[INET6_ADDRSTRLEN];
		const struct sockaddr_in *s4 = (const void *)&ss;
		const struct sockaddr_in6 *s6 = (const void *)&ss;

		v4 = ss.ss_family == AF_INET;
		v6 = ss.ss_family == AF_INET6;
		if (inet_ntop(ss.ss_family,
			      v4 ? (const void *)&s4->sin_addr
				 : (const void *)&s6->sin6_addr,
			      text, sizeof(text)) != NULL) {
			addr = talloc_strdup(tmp, text);
		}
		port = talloc_asprintf(
		    tmp, "%u",
		    (unsigned)ntohs(v4 ? s4->sin_port : s6->sin6_port));
	}

	if (info->gssapi) {
		const char *mech = info->mech != NULL ? info->mech : "krb5";

		err = knc_line(&buf, "MECH", mech);
		if (err == 0 && strcmp(mech, "krb5") == 0) {
			err = knc_line(&buf, "CREDS", info->principal);
		}
		if (err == 0 && info->export_name != NULL) {
			err = knc_line(&buf, "EXPORT_NAME",
				       hex_upper(tmp, info->export_name,
						 info->export_name_len));
		}
	}
	if (err == 0 && v4) {
		err = knc_line(&buf, "REMOTE_IP", addr);
	}
	if (err == 0 && v6) {
		err = knc_line(&buf, "REMOTE_IP6", addr);
	}
	if (err == 0) {
		err = knc_line(&buf, "REMOTE_ADDR", addr);
	}
	if (err == 0) {
		err = knc_line(&buf, "REMOTE_PORT", port);
	}
	if (err == 0) {
		err = knc_line(&buf, "VERSION", TSGATE_KNC_VERSION);
	}
	if (err == 0) {
		buf = talloc_strdup_append_buffer(buf, "END\n");
		err = buf == NULL ? ENOMEM : 0;
	}
	if (err != 0) {
		talloc_free(tmp);
		return err;
	}
	*plen = strlen(buf);
	*pbuf = (uint8_t *)talloc_steal(mem_ctx, buf);
	talloc_free(tmp);
	return 0;
}

const char *tsgate_identity_summary(const struct tsgate_peer_info *info)
{
	if (info->gssapi && info->principal != NULL) {
		return info->principal;
	}
	if (info->tls && info->cert_verified &&
	    info->client_name_error == NULL && info->client_subject != NULL) {
		return info->client_subject;
	}
	return NULL;
}
