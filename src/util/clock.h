/*
 * clock.h: wall-clock times in the formats the seed's documents use, and
 * the one monotonic clock every deadline and duration of ccr reads.
 */
#ifndef CCR_CLOCK_H
#define CCR_CLOCK_H

#include <stdint.h>

/* clock_iso: now as JavaScript's toISOString(), "2026-01-02T03:04:05.678Z". */
void clock_iso(char out[32]);

/* clock_ms: milliseconds since the epoch. */
int64_t clock_ms(void);

/* clock_mono_ms: a monotonic clock in milliseconds, for durations. */
int64_t clock_mono_ms(void);

/* clock_mono_us: the same clock in microseconds, for latencies. */
int64_t clock_mono_us(void);

#endif
