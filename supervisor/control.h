/*
 * The operators' control socket: a UNIX stream socket (mode 0660) on which
 * vetsyncctl sends one JSON request line and reads one JSON answer line.
 * Only root and vetsyncd's own user may talk to it (SO_PEERCRED).
 *
 *   {"cmd":"status"}
 *   {"cmd":"sync","clinic":"ID","kind":"notes|schedule|validate"}
 *   {"cmd":"credentials-set","clinic":"ID","username":"...",
 *    "password":"...","company_id":"..."|null}
 *       answered once the validation job has run (credentials.h); the
 *       request's bytes are wiped as soon as it is parsed
 *
 * Answers carry "ok": true, or "ok": false and "error": "message".
 */
#ifndef VS_SUPERVISOR_CONTROL_H
#define VS_SUPERVISOR_CONTROL_H

#include <stddef.h>

/* Largest request line. */
#define CONTROL_REQUEST_MAX 4096

int control_listen(const char *path, char *err, size_t errsz);
void control_close(void);

#endif
