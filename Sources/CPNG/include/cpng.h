#pragma once
// PNG reading and writing through libpng's classic API, wrapped in C so that the
// setjmp/longjmp error handling stays here (Swift cannot call setjmp). The classic API
// is used rather than the simplified png_image_* one because the latter converts 16-bit
// samples to linear light with premultiplied alpha, which breaks bit-exact round trips.
// Samples are returned as stored: no gamma, colour-space or alpha conversion.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Pixels interleaved as grey, grey+alpha, RGB or RGBA (channels 1...4); depth 8 or 16,
/// 16-bit samples in native byte order. Free with cpng_free.
typedef struct {
    int width, height, channels, depth;
    uint8_t *pixels;
    size_t size;
} cpng_image;

/// Bytes of an encoded PNG. Free with cpng_free_bytes.
typedef struct {
    uint8_t *data;
    size_t size;
} cpng_bytes;

/// Decodes a PNG. Palettes expand to RGB(A), tRNS to alpha, 1/2/4-bit grey to 8-bit.
/// Refuses, before allocating, images with more than `max_pixels` pixels.
int cpng_read(const uint8_t *data, size_t size, size_t max_pixels, cpng_image *image,
              char *error, size_t error_size);
void cpng_free(cpng_image *image);

/// Encodes interleaved pixels (channels 1...4, depth 8 or 16 in native byte order).
int cpng_write(const void *pixels, int width, int height, int channels, int depth,
               cpng_bytes *out, char *error, size_t error_size);
void cpng_free_bytes(cpng_bytes *bytes);

#ifdef __cplusplus
}
#endif
