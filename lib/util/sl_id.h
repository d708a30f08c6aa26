/* sl_id.h - job ids: 72 random bits as 12 base64url characters, like
 * amavisd-new's mail_id, and like it beginning and ending with a letter or
 * a digit (the quarantine's "virus-<id>" names depend on it). Short enough
 * to grep, long enough never to collide. */
#ifndef SL_ID_H
#define SL_ID_H

#define SL_ID_LEN 12

/* Fills buf (SL_ID_LEN + 1 bytes) with a fresh NUL-terminated id. */
void sl_id_new(char buf[SL_ID_LEN + 1]);

#endif
