/*
 * MC146818 CMOS real-time clock at 0x70 (index) / 0x71 (data), IRQ 8.
 *
 * The clock is the host clock plus an offset. -rtc base= chooses what the
 * guest first sees (UTC, local time or a given date); when the guest sets
 * the clock the offset changes and on_change is told the new offset in
 * seconds relative to that base, at most once per second (a burst of
 * settings reports its last value when the second is over).
 */
#ifndef VIREO_HW_RTC_MC146818_H
#define VIREO_HW_RTC_MC146818_H

#include <stdbool.h>
#include <stdint.h>

#include "core/main-loop.h"
#include "util/error.h"

typedef struct Rtc Rtc;

typedef void RtcChangeFn(void *opaque, int64_t offset_seconds);

typedef struct RtcConfig {
    const char *base;       /* "utc" (NULL), "localtime" or "YYYY-MM-DD[THH:MM:SS]" */
    VireoClock clock;       /* what time runs on: host wall clock or guest time */
    RtcChangeFn *on_change; /* may be NULL */
    void *opaque;
} RtcConfig;

#define RTC_IO_BASE         0x70
#define RTC_CMOS_SIZE       128
#define RTC_REG_CENTURY     0x32    /* where the century lives (named in the FADT) */
#define RTC_CHANGE_MIN_INTERVAL_NS 1000000000LL

Rtc *rtc_create(uint16_t io_base, unsigned gsi, const RtcConfig *cfg, Error **errp);
void rtc_destroy(Rtc *s);
void rtc_reset(Rtc *s);

/* Seconds the guest's clock is ahead of the base clock. */
int64_t rtc_get_offset(const Rtc *s);

/* Firmware-owned CMOS bytes (indices 0x0e..0x7f); others are clock registers. */
void rtc_cmos_set(Rtc *s, unsigned index, uint8_t value);

#endif
