/* xml/parse.h: the core's side of pl_stanza_parse (parley/stanza.h),
 * which keeps one stream parser open between calls. */
#ifndef PL_XML_PARSE_H
#define PL_XML_PARSE_H

/* Frees the parser pl_stanza_parse keeps if no call used it since the
 * previous call; called once a second, it releases the parser after a
 * quiet second. */
void pl__stanza_parse_trim(void);

#endif
