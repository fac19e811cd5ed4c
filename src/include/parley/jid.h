/* parley/jid.h: JIDs (RFC 7622) prepared with stringprep: nodeprep,
 * nameprep and resourceprep, with the length limits (1023 bytes for each
 * part after preparation). */
#ifndef PARLEY_JID_H
#define PARLEY_JID_H

#include <stddef.h>

/* A prepared JID, allocated as one block. node and resource are NULL when
 * absent; domain is never NULL. full is the whole JID, bare the JID
 * without resource (the same string as full when there is no resource). */
typedef struct pl_jid {
    const char *node;
    const char *domain;
    const char *resource;
    const char *full;
    const char *bare;
} pl_jid;

/* Parses and prepares a JID string. Returns NULL if it is not a valid JID
 * (empty parts, prohibited characters, over-long parts, bad domain). The
 * result is freed with pl_jid_free. */
pl_jid *pl_jid_parse(const char *s);

/* Builds a prepared JID from parts (node and resource may be NULL). NULL if
 * any part is invalid. */
pl_jid *pl_jid_make(const char *node, const char *domain, const char *resource);

/* A copy of j without its resource. */
pl_jid *pl_jid_to_bare(const pl_jid *j);

pl_jid *pl_jid_dup(const pl_jid *j);
void pl_jid_free(pl_jid *j);

/* Compare two prepared JIDs: full (all parts) or bare (node and domain). */
int pl_jid_eq(const pl_jid *a, const pl_jid *b);
int pl_jid_bare_eq(const pl_jid *a, const pl_jid *b);

/* Prepares one part into out (outsz bytes, NUL terminated). Return 0 on
 * success, -1 if the part is invalid or does not fit. */
int pl_jid_nodeprep(const char *in, char *out, size_t outsz);
int pl_jid_nameprep(const char *in, char *out, size_t outsz);
int pl_jid_resourceprep(const char *in, char *out, size_t outsz);
/* As pl_jid_resourceprep, and also refusing code points unassigned in
 * Unicode 3.2, for a resource being bound (a stored string). */
int pl_jid_resourceprep_stored(const char *in, char *out, size_t outsz);

/* SASLprep (RFC 4013) for user names and passwords: 0 on success. The
 * result is malloced into *out. */
int pl_saslprep(const char *in, char **out);

#endif
