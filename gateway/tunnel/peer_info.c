/* SPDX-License-Identifier: MIT */
/*
 * A client's identity from its tunnel (peer_info.h).
 */
#include "peer_info.h"

#include "tstream_gssapi.h"
#include "tstream_tls.h"

void tsgate_peer_info_from_tls(struct tsgate_peer_info *info,
			       struct tstream_context *stream)
{
	enum tstream_tls_peer_result pr;
	const char *const *sans;
	size_t n = 0;

	info->tls = true;
	info->tls_version = tstream_tls_version(stream);
	info->tls_cipher = tstream_tls_cipher_suite(stream);
	info->tls_resumed = tstream_tls_resumed(stream);
	info->tls_own_records =
	    tstream_tls_record_layer_of(stream) == TSTREAM_TLS_RECORD_TSGATE;
	info->tls_records_refused = tstream_tls_record_layer_refusal(stream);
	info->sni = tstream_tls_sni(stream);
	info->alpn = tstream_tls_alpn(stream);
	pr = tstream_tls_peer_verify_result(stream, NULL);
	info->client_cert = pr != TSTREAM_TLS_PEER_NO_CERT;
	info->cert_verified = pr == TSTREAM_TLS_PEER_VALID;
	info->client_subject = tstream_tls_peer_subject(stream);
	info->client_cn = tstream_tls_peer_common_name(stream);
	info->client_name_error = tstream_tls_peer_name_error(stream);
	sans = tstream_tls_peer_sans(stream);
	while (sans != NULL && sans[n] != NULL) {
		n++;
	}
	info->client_sans = sans;
	info->num_client_sans = n;
}

void tsgate_peer_info_from_gssapi(TALLOC_CTX *mem_ctx,
				  struct tsgate_peer_info *info,
				  struct tstream_context *stream)
{
	info->gssapi = true;
	info->principal = tstream_gssapi_client_principal(stream);
	info->mech = tstream_gssapi_mech_name(stream);
	info->local_name = tstream_gssapi_client_localname(stream, mem_ctx);
	info->export_name =
	    tstream_gssapi_client_exported_name(stream, &info->export_name_len);
}
