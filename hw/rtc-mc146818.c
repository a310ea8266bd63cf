/*
 * MC146818 RTC. Time registers are computed from the clock when read;
 * while the SET bit is on they hold what the guest wrote, and clearing it
 * (or writing a time register while the clock runs) makes that the new time.
 */
#include "hw/rtc-mc146818.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hw/irq.h"
#include "memory/address-space.h"
#include "util/osdep.h"

#define NS_PER_SEC 1000000000LL

/* Register indices. */
#define REG_SEC         0x00
#define REG_SEC_ALARM   0x01
#define REG_MIN         0x02
#define REG_MIN_ALARM   0x03
#define REG_HOUR        0x04
#define REG_HOUR_ALARM  0x05
#define REG_WDAY        0x06
#define REG_MDAY        0x07
#define REG_MONTH       0x08
#define REG_YEAR        0x09
#define REG_A           0x0a
#define REG_B           0x0b
#define REG_C           0x0c
#define REG_D           0x0d

#define A_UIP       0x80    /* update in progress */
#define A_DV_MASK   0x70    /* divider chain; 010 is the running 32.768 kHz setting */
#define A_DV_NORMAL 0x20
#define A_RS_MASK   0x0f    /* periodic rate select */

#define B_SET   0x80
#define B_PIE   0x40
#define B_AIE   0x20
#define B_UIE   0x10
#define B_DM    0x04    /* binary (not BCD) */
#define B_24H   0x02

#define C_IRQF  0x80
#define C_PF    0x40
#define C_AF    0x20
#define C_UF    0x10

#define D_VRT   0x80    /* battery good */

#define ALARM_DONT_CARE 0xc0
/* UIP reads as set during the last 244 us before the seconds tick. */
/* Time in ns since the epoch must fit int64_t with room for the clock:
 * later dates are refused, as the arithmetic below would overflow. */
#define RTC_MAX_SECS (INT64_MAX / NS_PER_SEC / 2)   /* the year 2116 */
#define UIP_WINDOW_NS (8 * NS_PER_SEC / 32768)   /* 8 cycles of the 32.768 kHz clock */

typedef enum RtcBase { RTC_BASE_UTC, RTC_BASE_LOCALTIME, RTC_BASE_DATE } RtcBase;

struct Rtc {
    IoRegion *io;
    unsigned gsi;
    VireoClock clock;
    RtcBase base;
    int64_t base_delta_ns;  /* base clock = clock + this (the start date minus the clock) */
    int64_t offset_ns;      /* guest clock = base clock + this */
    uint8_t cmos[RTC_CMOS_SIZE];
    uint8_t index;
    bool irq_level;
    Timer *periodic_timer;  /* PF, armed while PIE is on */
    Timer *second_timer;    /* UF and AF, armed while UIE or AIE is on */
    /* RTC_CHANGE throttling */
    RtcChangeFn *on_change;
    void *opaque;
    Timer *change_timer;
    int64_t last_change_ns; /* host time of the last report, or INT64_MIN */
    int64_t flags_seen_ns;  /* RTC time up to which UF and AF are accounted for */
    int64_t periodic_start_ns;  /* clock time the current periodic interval began */
    int64_t periodic_cur_ns;    /* its length; 0 while the periodic timer is off */
    bool change_pending;
};

static int64_t host_now_ns(void)
{
    return clock_get_ns(CLOCK_REALTIME_HOST);
}

/* Guest wall-clock time in ns since the epoch, as the RTC counts it. */
static int64_t rtc_now_ns(const Rtc *s)
{
    return clock_get_ns(s->clock) + s->base_delta_ns + s->offset_ns;
}

static int to_bcd(int v)   { return ((v / 10) << 4) | (v % 10); }
static int from_bcd(int v) { return ((v >> 4) & 0x0f) * 10 + (v & 0x0f); }

static uint8_t to_reg(const Rtc *s, int v)
{
    return (s->cmos[REG_B] & B_DM) ? v : to_bcd(v);
}

static int from_reg(const Rtc *s, uint8_t v)
{
    return (s->cmos[REG_B] & B_DM) ? v : from_bcd(v);
}

static uint8_t hour_to_reg(const Rtc *s, int hour)
{
    if (s->cmos[REG_B] & B_24H) {
        return to_reg(s, hour);
    }
    int h12 = hour % 12 ? hour % 12 : 12;
    return to_reg(s, h12) | (hour >= 12 ? 0x80 : 0);
}

static int hour_from_reg(const Rtc *s, uint8_t v)
{
    if (s->cmos[REG_B] & B_24H) {
        return from_reg(s, v);
    }
    int h = from_reg(s, v & 0x7f) % 12;
    return (v & 0x80) ? h + 12 : h;
}

static void seconds_to_tm(const Rtc *s, time_t secs, struct tm *tm)
{
    if (s->base == RTC_BASE_LOCALTIME) {
        localtime_r(&secs, tm);
    } else {
        gmtime_r(&secs, tm);
    }
}

static time_t tm_to_seconds(const Rtc *s, struct tm *tm)
{
    if (s->base == RTC_BASE_LOCALTIME) {
        tm->tm_isdst = -1;
        return mktime(tm);
    }
    return timegm(tm);
}

/* Copy the running time into the time registers. */
static void latch_time(Rtc *s)
{
    struct tm tm;
    int64_t now = rtc_now_ns(s);
    seconds_to_tm(s, (time_t)(now >= 0 ? now / NS_PER_SEC : (now - NS_PER_SEC + 1) / NS_PER_SEC), &tm);
    int year = tm.tm_year + 1900;
    s->cmos[REG_SEC] = to_reg(s, tm.tm_sec);
    s->cmos[REG_MIN] = to_reg(s, tm.tm_min);
    s->cmos[REG_HOUR] = hour_to_reg(s, tm.tm_hour);
    s->cmos[REG_WDAY] = to_reg(s, tm.tm_wday + 1);
    s->cmos[REG_MDAY] = to_reg(s, tm.tm_mday);
    s->cmos[REG_MONTH] = to_reg(s, tm.tm_mon + 1);
    s->cmos[REG_YEAR] = to_reg(s, ((year % 100) + 100) % 100);
    s->cmos[RTC_REG_CENTURY] = to_reg(s, year / 100);
}

/* ---- RTC_CHANGE, at most one per second ---- */

static void report_change(Rtc *s)
{
    s->change_pending = false;
    s->last_change_ns = host_now_ns();
    if (s->on_change) {
        s->on_change(s->opaque, rtc_get_offset(s));
    }
}

static void change_timer_cb(void *opaque)
{
    Rtc *s = opaque;
    if (s->change_pending) {
        report_change(s);
    }
}

static void time_was_set(Rtc *s)
{
    int64_t now = host_now_ns();
    if (s->last_change_ns == INT64_MIN ||
        now - s->last_change_ns >= RTC_CHANGE_MIN_INTERVAL_NS) {
        report_change(s);
        return;
    }
    /* Within the quiet period: report the latest value when it ends. */
    s->change_pending = true;
    if (!timer_pending(s->change_timer)) {
        timer_mod(s->change_timer, s->last_change_ns + RTC_CHANGE_MIN_INTERVAL_NS);
    }
}

/* The guest's registers become the time. */
static void set_time_from_regs(Rtc *s)
{
    struct tm tm = { 0 };
    int century = from_reg(s, s->cmos[RTC_REG_CENTURY]);
    tm.tm_sec = from_reg(s, s->cmos[REG_SEC]);
    tm.tm_min = from_reg(s, s->cmos[REG_MIN]);
    tm.tm_hour = hour_from_reg(s, s->cmos[REG_HOUR]);
    tm.tm_mday = from_reg(s, s->cmos[REG_MDAY]);
    tm.tm_mon = from_reg(s, s->cmos[REG_MONTH]) - 1;
    tm.tm_year = century * 100 + from_reg(s, s->cmos[REG_YEAR]) - 1900;
    time_t secs = tm_to_seconds(s, &tm);
    if ((secs == (time_t)-1 && tm.tm_year > 0) || secs > RTC_MAX_SECS || secs < -RTC_MAX_SECS) {
        return;     /* nonsense the C library cannot place: keep the old time */
    }
    int64_t base_now = clock_get_ns(s->clock) + s->base_delta_ns;
    s->offset_ns = (int64_t)secs * NS_PER_SEC - base_now;
    s->flags_seen_ns = rtc_now_ns(s);
    time_was_set(s);
}

int64_t rtc_get_offset(const Rtc *s)
{
    /* Round to the nearest second: the guest sets whole seconds. */
    int64_t off = s->offset_ns;
    return off >= 0 ? (off + NS_PER_SEC / 2) / NS_PER_SEC
                    : -((-off + NS_PER_SEC / 2) / NS_PER_SEC);
}

/* ---- interrupts ---- */

static void update_irq(Rtc *s)
{
    uint8_t c = s->cmos[REG_C] & (C_PF | C_AF | C_UF);
    uint8_t b = s->cmos[REG_B];
    bool level = ((c & C_PF) && (b & B_PIE)) || ((c & C_AF) && (b & B_AIE)) ||
                 ((c & C_UF) && (b & B_UIE));
    s->cmos[REG_C] = c | (level ? C_IRQF : 0);
    if (level != s->irq_level) {
        s->irq_level = level;
        irq_set_level(s->gsi, level);
    }
}

static bool clock_running(const Rtc *s)
{
    return (s->cmos[REG_A] & A_DV_MASK) == A_DV_NORMAL && !(s->cmos[REG_B] & B_SET);
}

/* Period of the periodic interrupt in ns, 0 when off. */
static int64_t periodic_period_ns(const Rtc *s)
{
    unsigned rs = s->cmos[REG_A] & A_RS_MASK;
    if (rs == 0) {
        return 0;
    }
    if (rs <= 2) {
        rs += 7;        /* rates 1 and 2 repeat rates 8 and 9 */
    }
    uint64_t ticks = 1u << (rs - 1);            /* of the 32.768 kHz clock */
    return (int64_t)(ticks * NS_PER_SEC / 32768);
}

/*
 * A new rate takes effect from the last periodic tick, not from a fresh
 * phase, as on the MC146818: a guest that reprograms the rate after each
 * interrupt (as Windows does) keeps an exact count of elapsed time.
 */
static void arm_periodic(Rtc *s)
{
    int64_t period = periodic_period_ns(s);
    if (!(s->cmos[REG_B] & B_PIE) || !period) {
        timer_del(s->periodic_timer);
        s->periodic_cur_ns = 0;
        return;
    }
    if (period == s->periodic_cur_ns && timer_pending(s->periodic_timer)) {
        return;
    }
    int64_t now = clock_get_ns(s->clock);
    if (!s->periodic_cur_ns) {
        s->periodic_start_ns = now;
    }
    int64_t next = s->periodic_start_ns + period;
    if (next <= now) {
        next = now + period - (now - s->periodic_start_ns) % period;
    }
    s->periodic_cur_ns = period;
    timer_mod(s->periodic_timer, next);
}

static void periodic_cb(void *opaque)
{
    Rtc *s = opaque;
    s->periodic_start_ns += s->periodic_cur_ns;
    s->cmos[REG_C] |= C_PF;
    update_irq(s);
    s->periodic_cur_ns = periodic_period_ns(s);
    int64_t now = clock_get_ns(s->clock);
    if (s->periodic_cur_ns && s->periodic_start_ns + s->periodic_cur_ns <= now) {
        /* ticks the clock jumped over are one interrupt, not a burst */
        s->periodic_start_ns = now - (now - s->periodic_start_ns) % s->periodic_cur_ns;
    }
    if (s->periodic_cur_ns && (s->cmos[REG_B] & B_PIE)) {
        timer_mod(s->periodic_timer, s->periodic_start_ns + s->periodic_cur_ns);
    }
}

static void arm_second(Rtc *s)
{
    if (!(s->cmos[REG_B] & (B_UIE | B_AIE)) || !clock_running(s)) {
        timer_del(s->second_timer);
        return;
    }
    int64_t now = rtc_now_ns(s);
    int64_t into = ((now % NS_PER_SEC) + NS_PER_SEC) % NS_PER_SEC;
    timer_mod(s->second_timer, clock_get_ns(s->clock) + (NS_PER_SEC - into));
}

static bool alarm_field_matches(uint8_t alarm, uint8_t now)
{
    return (alarm & ALARM_DONT_CARE) == ALARM_DONT_CARE || alarm == now;
}

static void second_cb(void *opaque)
{
    Rtc *s = opaque;
    latch_time(s);
    s->cmos[REG_C] |= C_UF;
    s->flags_seen_ns = rtc_now_ns(s);
    if (alarm_field_matches(s->cmos[REG_SEC_ALARM], s->cmos[REG_SEC]) &&
        alarm_field_matches(s->cmos[REG_MIN_ALARM], s->cmos[REG_MIN]) &&
        alarm_field_matches(s->cmos[REG_HOUR_ALARM], s->cmos[REG_HOUR])) {
        s->cmos[REG_C] |= C_AF;
    }
    update_irq(s);
    arm_second(s);
}

/* ---- registers ---- */

static bool is_time_reg(unsigned idx)
{
    return idx <= REG_YEAR || idx == RTC_REG_CENTURY;
}

static bool alarm_matches_time(const Rtc *s, int64_t secs)
{
    struct tm tm;
    seconds_to_tm(s, (time_t)secs, &tm);
    return alarm_field_matches(s->cmos[REG_SEC_ALARM], to_reg(s, tm.tm_sec)) &&
           alarm_field_matches(s->cmos[REG_MIN_ALARM], to_reg(s, tm.tm_min)) &&
           alarm_field_matches(s->cmos[REG_HOUR_ALARM], hour_to_reg(s, tm.tm_hour));
}

/*
 * Without UIE or AIE no timer ticks each second, yet the guest may poll
 * REG_C for the update and alarm flags: set the ones the updates since the
 * last look would have set. A day of updates covers every alarm pattern.
 */
static void catch_up_flags(Rtc *s)
{
    int64_t now = rtc_now_ns(s);
    if (!clock_running(s) || (s->cmos[REG_B] & (B_UIE | B_AIE))) {
        s->flags_seen_ns = now;
        return;
    }
    int64_t from = s->flags_seen_ns / NS_PER_SEC, to = now / NS_PER_SEC;
    if (to > from) {
        s->cmos[REG_C] |= C_UF;
    }
    for (int64_t t = MAX(from + 1, to - 86400); t <= to; t++) {
        if (alarm_matches_time(s, t)) {
            s->cmos[REG_C] |= C_AF;
            break;
        }
    }
    s->flags_seen_ns = now;
}

static uint8_t read_reg(Rtc *s, unsigned idx)
{
    if (is_time_reg(idx) && clock_running(s)) {
        latch_time(s);
    }
    switch (idx) {
    case REG_A: {
        uint8_t a = s->cmos[REG_A] & ~A_UIP;
        int64_t into = ((rtc_now_ns(s) % NS_PER_SEC) + NS_PER_SEC) % NS_PER_SEC;
        if (clock_running(s) && into >= NS_PER_SEC - UIP_WINDOW_NS) {
            a |= A_UIP;
        }
        return a;
    }
    case REG_C: {
        catch_up_flags(s);
        uint8_t c = s->cmos[REG_C];
        s->cmos[REG_C] = 0;      /* reading C acknowledges every flag */
        update_irq(s);
        return c;
    }
    default:
        return s->cmos[idx];
    }
}

static void write_reg_b(Rtc *s, uint8_t val)
{
    uint8_t old = s->cmos[REG_B];
    if (!(old & B_SET) && (val & B_SET)) {
        latch_time(s);          /* freeze what the guest is about to edit */
    }
    if (val & B_SET) {
        val &= ~B_UIE;          /* no updates while setting */
    }
    s->cmos[REG_B] = val;
    if ((old & B_SET) && !(val & B_SET)) {
        set_time_from_regs(s);
    }
    update_irq(s);
}

/*
 * Stopping the divider freezes the time in the registers; starting it again
 * runs from what the guest wrote there meanwhile, with the first update half
 * a second later, as the MC146818 data sheet says.
 */
static void write_reg_a(Rtc *s, uint8_t val)
{
    bool was_running = clock_running(s);
    if (was_running) {
        latch_time(s);
    }
    s->cmos[REG_A] = val & ~A_UIP;
    if (!was_running && clock_running(s)) {
        set_time_from_regs(s);
        s->offset_ns += NS_PER_SEC / 2;
    }
}

static void write_reg(Rtc *s, unsigned idx, uint8_t val)
{
    switch (idx) {
    case REG_A:
        write_reg_a(s, val);
        break;
    case REG_B:
        write_reg_b(s, val);
        break;
    case REG_C:
    case REG_D:
        break;                  /* read-only */
    default:
        if (is_time_reg(idx) && clock_running(s)) {
            latch_time(s);      /* edit one field of the current time */
            s->cmos[idx] = val;
            set_time_from_regs(s);
        } else {
            s->cmos[idx] = val;
        }
        break;
    }
    arm_periodic(s);
    arm_second(s);
}

static uint64_t rtc_io_read(void *opaque, uint64_t offset, unsigned size)
{
    Rtc *s = opaque;
    return offset == 1 ? read_reg(s, s->index) : 0xff;
}

static void rtc_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    Rtc *s = opaque;
    if (offset == 0) {
        s->index = value & 0x7f;    /* bit 7 is the NMI mask, not ours */
    } else {
        write_reg(s, s->index, value & 0xff);
    }
}

static const IoOps rtc_io_ops = {
    .read = rtc_io_read,
    .write = rtc_io_write,
};

/* ---- set-up ---- */

static bool parse_base(Rtc *s, const char *base, Error **errp)
{
    /* utc and localtime start at the host's time and then follow the RTC's
     * clock, which for clock=vm is guest time, not the epoch. */
    if (!base || strcmp(base, "utc") == 0) {
        s->base = RTC_BASE_UTC;
        s->base_delta_ns = host_now_ns() - clock_get_ns(s->clock);
        return true;
    }
    if (strcmp(base, "localtime") == 0) {
        s->base = RTC_BASE_LOCALTIME;
        s->base_delta_ns = host_now_ns() - clock_get_ns(s->clock);
        return true;
    }
    struct tm tm = { 0 };
    const char *end = strptime(base, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || *end) {
        memset(&tm, 0, sizeof(tm));
        end = strptime(base, "%Y-%m-%d", &tm);
    }
    if (!end || *end) {
        error_setg(errp, "invalid -rtc base '%s': use utc, localtime or "
                   "YYYY-MM-DD[THH:MM:SS]", base);
        return false;
    }
    s->base = RTC_BASE_DATE;
    s->base_delta_ns = (int64_t)timegm(&tm) * NS_PER_SEC - clock_get_ns(s->clock);
    return true;
}

void rtc_reset(Rtc *s)
{
    s->cmos[REG_A] = A_DV_NORMAL | 0x06;    /* running, 1024 Hz rate */
    s->cmos[REG_B] = B_24H;
    s->cmos[REG_C] = 0;
    s->cmos[REG_D] = D_VRT;
    timer_del(s->periodic_timer);
    s->periodic_cur_ns = 0;
    timer_del(s->second_timer);
    update_irq(s);
}

Rtc *rtc_create(uint16_t io_base, unsigned gsi, const RtcConfig *cfg, Error **errp)
{
    Rtc *s = xzalloc(sizeof(*s));
    s->gsi = gsi;
    s->clock = cfg->clock;
    s->on_change = cfg->on_change;
    s->opaque = cfg->opaque;
    s->last_change_ns = INT64_MIN;
    if (!parse_base(s, cfg->base, errp)) {
        free(s);
        return NULL;
    }
    s->io = io_region_add(AS_PIO, "rtc", io_base, 2, &rtc_io_ops, s, errp);
    if (!s->io) {
        free(s);
        return NULL;
    }
    s->periodic_timer = timer_new(s->clock, periodic_cb, s);
    s->second_timer = timer_new(s->clock, second_cb, s);
    s->change_timer = timer_new(CLOCK_REALTIME_HOST, change_timer_cb, s);
    s->flags_seen_ns = rtc_now_ns(s);
    rtc_reset(s);
    return s;
}

void rtc_cmos_set(Rtc *s, unsigned index, uint8_t value)
{
    if (index > REG_D && index < RTC_CMOS_SIZE && index != RTC_REG_CENTURY) {
        s->cmos[index] = value;
    }
}

void rtc_destroy(Rtc *s)
{
    if (!s) {
        return;
    }
    timer_free(s->periodic_timer);
    timer_free(s->second_timer);
    timer_free(s->change_timer);
    io_region_del(s->io);
    free(s);
}
