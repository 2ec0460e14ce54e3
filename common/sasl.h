#ifndef GOVRELAY_SASL_H
#define GOVRELAY_SASL_H
/*
 * sasl: the server side of the two SASL mechanisms we offer (RFC 4954):
 * PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login), as pure
 * decoding so the session keeps the exchange and tests cover the bytes.
 */
#include <stddef.h>

#define SASL_FIELD_MAX 1024

/*
 * Strict base64 (RFC 4648 section 4, padding required, no whitespace)
 * into out; *outlen = bytes written. "=" alone decodes to nothing
 * (RFC 4954 section 4: an empty initial response). -EINVAL when
 * malformed or longer than outcap.
 */
int sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap,
    size_t *outlen);
/* out must hold 4 * ((len + 2) / 3) + 1 bytes. */
void sasl_b64_encode(const unsigned char *in, size_t len, char *out);

/*
 * PLAIN message "authzid NUL authcid NUL passwd" (already base64-decoded).
 * authzid may be empty or equal to authcid (we do not let one user act
 * for another); authcid and passwd must be non-empty, hold no NUL, and be
 * well-formed UTF-8 (RFC 4616 section 2). Fills user and pass
 * (SASL_FIELD_MAX + 1 bytes each). 0 or -EINVAL.
 */
int sasl_plain_parse(const unsigned char *msg, size_t len, char *user, char *pass);
/*
 * The same message split into its three fields (SASL_FIELD_MAX + 1 bytes
 * each), authzid ("" when absent) left for the caller to judge: the SMTP
 * session refuses one naming another user with 535 5.7.8, not as a
 * syntax error. Same checks otherwise; 0 or -EINVAL.
 */
int sasl_plain_split(const unsigned char *msg, size_t len, char *authzid, char *user,
    char *pass);

#endif
