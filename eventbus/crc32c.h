/* CRC-32C (Castagnoli), the checksum of every on-disk record
 * (docs/eventbus-format.md). Uses the SSE4.2 instruction when the CPU has
 * it, a table otherwise; both give the same values. Thread-safe. */
#ifndef OFE_BUS_CRC32C_H
#define OFE_BUS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: crc32c(crc32c(0, a), b) == crc32c(0, a||b).
 * This function can't fail. */
uint32_t bus_crc32c(uint32_t crc, const void *data, size_t len);

#endif
