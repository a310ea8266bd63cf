/*
 * Loads and stores of fixed-width integers at any byte address, in a given
 * byte order: on-disk image fields, wire formats, guest-visible tables and
 * the register areas KVM hands back.  Byte-wise, so alignment never matters.
 */
#ifndef VIREO_UTIL_BYTEORDER_H
#define VIREO_UTIL_BYTEORDER_H

#include <stdint.h>

static inline uint16_t ld_be16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] << 8 | b[1]);
}

static inline uint32_t ld_be32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline uint64_t ld_be64(const void *p)
{
    return (uint64_t)ld_be32(p) << 32 | ld_be32((const uint8_t *)p + 4);
}

static inline void st_be16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

static inline void st_be32(void *p, uint32_t v)
{
    st_be16(p, (uint16_t)(v >> 16));
    st_be16((uint8_t *)p + 2, (uint16_t)v);
}

static inline void st_be64(void *p, uint64_t v)
{
    st_be32(p, (uint32_t)(v >> 32));
    st_be32((uint8_t *)p + 4, (uint32_t)v);
}

static inline uint16_t ld_le16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[1] << 8 | b[0]);
}

static inline uint32_t ld_le32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}

static inline uint64_t ld_le64(const void *p)
{
    return (uint64_t)ld_le32((const uint8_t *)p + 4) << 32 | ld_le32(p);
}

static inline void st_le16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

static inline void st_le32(void *p, uint32_t v)
{
    st_le16(p, (uint16_t)v);
    st_le16((uint8_t *)p + 2, (uint16_t)(v >> 16));
}

static inline void st_le64(void *p, uint64_t v)
{
    st_le32(p, (uint32_t)v);
    st_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

#endif
