#ifndef GOVRELAY_ADDR_H
#define GOVRELAY_ADDR_H
/*
 * addr: the one canonical form of a domain and of a mail address, so that
 * the store, the CLI and the SMTP session compare the same bytes.
 *
 * A domain is stored as its A-label form (IDNA2008 with UTS #46 mapping,
 * through libidn2), lowercase, without a trailing dot: "Sở-Nội-vụ.Hà-Nội.VN"
 * and "xn--s-ni-v-....vn" are one domain. An address is LOCAL@DOMAIN with
 * the domain canonical and the local part lowercased in its ASCII letters
 * (RFC 5321 section 2.4 lets the receiver treat it case-sensitively, but
 * every agency's mail store here is case-insensitive, as Postfix's lookups
 * are); a UTF-8 local part (RFC 6531) is kept byte for byte after a
 * well-formedness check.
 */
#include <stdbool.h>
#include <stddef.h>

#define ADDR_DOMAIN_MAX 253     /* RFC 1035 2.3.4 text form, no final dot */
#define ADDR_LOCAL_MAX 64       /* RFC 5321 4.5.3.1.1 */
#define ADDR_MAX (ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_MAX)

/*
 * Canonical domain of in (U-labels or A-labels, any case, one optional
 * trailing dot) into out (at least ADDR_DOMAIN_MAX + 1 bytes). A pure-ASCII
 * name without xn-- labels is only lowercased (so RFC 1123 names such as
 * "r1---x.example" stay valid); anything else goes through IDNA2008. Refuses
 * address literals, empty labels, labels over 63 octets, characters
 * outside letters/digits/hyphen after conversion, a leading or trailing
 * hyphen, an all-numeric last label. 0, or -EINVAL with *why a static
 * English reason naming the fault.
 */
int addr_domain_canon(const char *in, char *out, size_t outlen, const char **why);

/*
 * Canonical form of an addr-spec LOCAL@DOMAIN (no angle brackets, no
 * display name) into out (at least ADDR_MAX + 1 bytes). The local part is
 * a dot-atom or a quoted string as RFC 5321 allows; quoted local parts are
 * kept quoted when they need to be, with only '"' and '\' escaped, and
 * unquoted when their content is a dot-atom (quoting is semantically
 * invisible, RFC 5322 3.2.4): "\"Ab\"@x" gives "ab@x". Address literals
 * (user@[192.0.2.1]) are refused. 0, or -EINVAL with *why (out is then
 * ""). For both functions in and out may be the same buffer.
 */
int addr_canon(const char *in, char *out, size_t outlen, const char **why);

/* The domain part of a canonical address (after the last '@'), or "". */
const char *addr_domain_of(const char *canon_addr);

#endif
