/*
 * crc32c.h: CRC-32C (Castagnoli), as used by Cloud Storage (the `crc32c`
 * object field / x-goog-hash) and Cloud KMS (*Crc32c request and response
 * fields): reflected polynomial 0x82F63B78, initial value and final XOR
 * 0xFFFFFFFF (RFC 4960 Appendix B; RFC 3720 §12.1).
 *
 * crc32c_update() continues a CRC: pass 0 to start, then the value returned
 * by the previous call; the value after the last call is the finished CRC
 * (the pre- and post-inversion happen inside each call, zlib style).  So
 *     crc32c(p, n) == crc32c_update(crc32c_update(0, p, k), p + k, n - k).
 * Known answers: "123456789" -> 0xE3069283; 32 zero bytes -> 0x8A9136AA.
 */
#ifndef CCR_CRC32C_H
#define CCR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c_update(uint32_t crc, const void *data, size_t n);
uint32_t crc32c(const void *data, size_t n);

#endif
