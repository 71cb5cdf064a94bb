/*
 * systemd's notify protocol (Type=notify, WatchdogSec=): a datagram to
 * $NOTIFY_SOCKET.  Without NOTIFY_SOCKET every call does nothing.
 */
#ifndef VS_SUPERVISOR_NOTIFY_H
#define VS_SUPERVISOR_NOTIFY_H

#include <stdint.h>

/* Send state ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...").  */
int notify_send(const char *state);

/* The watchdog interval systemd asked for, in ms; 0 when none. */
uint64_t notify_watchdog_ms(void);

#endif
