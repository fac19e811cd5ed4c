/* xml/stream.h: the incremental XMPP stream parser (libexpat). Turns the
 * bytes of one connection into stream-open, stanza and stream-close
 * events, and detects what RFC 6120 4.9 calls stream errors in the XML. */
#ifndef PL_XML_STREAM_H
#define PL_XML_STREAM_H

#include <stddef.h>
#include <parley/stanza.h>

typedef struct pl_xml_stream pl_xml_stream;

/* The start tag of a client stream that declares nothing but the client
 * namespace and the "stream" prefix: what stored stanzas are parsed
 * inside, and what a trimmed client stream is rebuilt from when its own
 * header declared the same. */
#define PL_XML_CLIENT_HEADER \
    "<stream:stream xmlns='" PL_NS_CLIENT "' xmlns:stream='" PL_NS_STREAM "'>"

typedef struct pl_xml_stream_cb {
    /* The stream header. ns is the namespace of the element (must be
     * PL_NS_STREAM for a valid stream), name its local name ("stream"),
     * content_ns the default namespace declared on it (NULL if none).
     * attrs holds to/from/version/id/"xml:lang" and any others. */
    void (*stream_open)(void *ud, const char *ns, const char *name,
                        const char *content_ns, const pl_attr *attrs);
    /* A complete top-level element. The callee owns the one reference. */
    void (*stanza)(void *ud, pl_stanza *st);
    /* </stream:stream> */
    void (*stream_close)(void *ud);
    /* A stream-level error: "not-well-formed", "restricted-xml" (DTD,
     * entity declaration, processing instruction, comment),
     * "policy-violation" (stanza over the size limit) or
     * "invalid-namespace" / "bad-format" where detectable at this level.
     * No further callbacks follow. */
    void (*error)(void *ud, const char *condition, const char *text);
} pl_xml_stream_cb;

/* A parser for one connection. content_ns is PL_NS_CLIENT or
 * PL_NS_SERVER: top-level elements in it are stored as PL_NS_CLIENT.
 * max_stanza is the byte limit of one top-level element (0: none). */
pl_xml_stream *pl_xml_stream_new(const pl_xml_stream_cb *cb, void *ud,
                                 const char *content_ns, size_t max_stanza);
void pl_xml_stream_free(pl_xml_stream *xs);

/* Feeds bytes. Callbacks run from inside this call. Returns 0, or -1 after
 * the error callback ran (the stream is dead then). */
int pl_xml_stream_feed(pl_xml_stream *xs, const char *data, size_t len);

/* Asks for a stream restart (after STARTTLS or SASL success). Safe to call
 * from inside a callback: parsing stops after the current element, and the
 * parser is reset to expect a new stream header. If discard_rest is set,
 * bytes of the current feed after that element are dropped (STARTTLS
 * requires it); otherwise they are parsed as the start of the new stream. */
void pl_xml_stream_restart(pl_xml_stream *xs, int discard_rest);

/* Releases the parser's internal buffers while the connection is idle
 * (between stanzas); the next feed re-creates what it needs. */
void pl_xml_stream_trim(pl_xml_stream *xs);

/* Bytes of parser memory (each stream's expat pool) mapped by all
 * streams right now; a trimmed stream holds none. */
size_t pl_xml_stream_mapped(void);

/* Bytes of parser memory released by streams and kept for the next ones
 * (no system call, no fresh pages per stream restart or connection). */
size_t pl_xml_stream_cached(void);

/* Unmaps the kept parser memory that no stream took since the previous
 * call; called once a second, it empties the cache after a quiet second. */
void pl_xml_stream_shrink_cache(void);

/* Bytes of the stream header kept to rebuild a trimmed parser; 0 when
 * the header declared what PL_XML_CLIENT_HEADER does, which then
 * rebuilds it. */
size_t pl_xml_stream_header_kept(const pl_xml_stream *xs);

/* True when the stream is open, between top-level elements, with no
 * partial input held: the next byte may begin a new element. */
int pl_xml_stream_between(const pl_xml_stream *xs);

/* Replaces the size limit. */
void pl_xml_stream_set_limit(pl_xml_stream *xs, size_t max_stanza);

#endif
