/*
 * clock.c: see clock.h.
 */
#include <stdio.h>
#include <time.h>

#include "util/clock.h"

/* v (0 <= v < 10^n) as n decimal digits, zero-padded. */
static void digits(char *out, long v, int n)
{
	while (n-- > 0) {
		out[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

void clock_iso(char out[32])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* Digits by hand, not snprintf: every log line calls this. */
	digits(out, tm.tm_year + 1900, 4);
	out[4] = '-', digits(out + 5, tm.tm_mon + 1, 2);
	out[7] = '-', digits(out + 8, tm.tm_mday, 2);
	out[10] = 'T', digits(out + 11, tm.tm_hour, 2);
	out[13] = ':', digits(out + 14, tm.tm_min, 2);
	out[16] = ':', digits(out + 17, tm.tm_sec, 2);
	out[19] = '.', digits(out + 20, (long)(ts.tv_nsec / 1000000L), 3);
	out[23] = 'Z', out[24] = 0;
}

int64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
