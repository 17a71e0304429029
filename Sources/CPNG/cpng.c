#include "cpng.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Shared by every libpng callback of one call: where errors go and where bytes come from.
typedef struct {
    char *error;
    size_t error_size;
    const uint8_t *data;
    size_t size, offset;
    uint8_t *out;
    size_t out_size, out_capacity;
    int out_failed;
} context;

static void on_error(png_structp png, png_const_charp message) {
    context *c = (context *)png_get_error_ptr(png);
    snprintf(c->error, c->error_size, "%s", message);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;  // warnings (e.g. a bad ancillary chunk CRC) are not errors
}

static void read_bytes(png_structp png, png_bytep dst, size_t n) {
    context *c = (context *)png_get_io_ptr(png);
    if (n > c->size - c->offset) png_error(png, "the file is truncated");
    memcpy(dst, c->data + c->offset, n);
    c->offset += n;
}

static void write_bytes(png_structp png, png_bytep src, size_t n) {
    context *c = (context *)png_get_io_ptr(png);
    if (c->out_size + n > c->out_capacity) {
        size_t cap = c->out_capacity ? c->out_capacity : 65536;
        while (cap < c->out_size + n) cap *= 2;
        uint8_t *p = realloc(c->out, cap);
        if (!p) png_error(png, "out of memory");
        c->out = p;
        c->out_capacity = cap;
    }
    memcpy(c->out + c->out_size, src, n);
    c->out_size += n;
}

static void flush_bytes(png_structp png) { (void)png; }

static int check_signature(const uint8_t *data, size_t size, char *error, size_t error_size) {
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(error, error_size, "not a PNG file");
        return -1;
    }
    return 0;
}

// Sets up the transforms that turn any PNG into grey/GA/RGB/RGBA at 8 or 16 bits.
static void request_plain_samples(png_structp png, png_infop info) {
    int type = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) {
        const uint16_t one = 1;
        if (*(const uint8_t *)&one == 1) png_set_swap(png);  // PNG stores big-endian
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
}

int cpng_read(const uint8_t *data, size_t size, size_t max_pixels, cpng_image *image,
              char *error, size_t error_size) {
    memset(image, 0, sizeof *image);
    if (check_signature(data, size, error, error_size) != 0) return -1;
    context c = {error, error_size, data, size, 0, NULL, 0, 0, 0};
    error[0] = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    if (!png) { snprintf(error, error_size, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    // Written between setjmp and longjmp, so volatile.
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        if (!c.error[0]) snprintf(error, error_size, "cannot decode the PNG");
        return -1;
    }
    png_set_read_fn(png, &c, read_bytes);
    png_read_info(png, info);
    request_plain_samples(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    int ch = png_get_channels(png, info), d = png_get_bit_depth(png, info);
    if (max_pixels && (size_t)w * (size_t)h > max_pixels) {
        snprintf(error, error_size, "the image declares %dx%d pixels, more than the limit of %zu",
                 w, h, max_pixels);
        png_longjmp(png, 1);
    }
    size_t row_bytes = png_get_rowbytes(png, info);
    if (row_bytes != (size_t)w * ch * (d / 8)) png_error(png, "unexpected row layout");
    pixels = malloc(row_bytes * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (int y = 0; y < h; y++) rows[y] = pixels + row_bytes * y;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    image->width = w; image->height = h; image->channels = ch; image->depth = d;
    image->pixels = pixels;
    image->size = row_bytes * h;
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

void cpng_free(cpng_image *image) {
    free(image->pixels);
    image->pixels = NULL;
}

int cpng_write(const void *pixels, int width, int height, int channels, int depth,
               cpng_bytes *out, char *error, size_t error_size) {
    static const int types[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    out->data = NULL;
    out->size = 0;
    if (channels < 1 || channels > 4 || (depth != 8 && depth != 16) || width <= 0 || height <= 0) {
        snprintf(error, error_size, "cannot write a %dx%d PNG with %d channels at %d bits",
                 width, height, channels, depth);
        return -1;
    }
    context c = {error, error_size, NULL, 0, 0, NULL, 0, 0, 0};
    error[0] = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    if (!png) { snprintf(error, error_size, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        free(rows);
        free(c.out);
        png_destroy_write_struct(&png, info ? &info : NULL);
        if (!c.error[0]) snprintf(error, error_size, "cannot encode the PNG");
        return -1;
    }
    png_set_write_fn(png, &c, write_bytes, flush_bytes);
    png_set_IHDR(png, info, width, height, depth, types[channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (depth == 16) {
        const uint16_t one = 1;
        if (*(const uint8_t *)&one == 1) png_set_swap(png);
    }
    size_t row_bytes = (size_t)width * channels * (depth / 8);
    rows = malloc(sizeof(png_bytep) * height);
    if (!rows) png_error(png, "out of memory");
    for (int y = 0; y < height; y++) rows[y] = (png_bytep)pixels + row_bytes * y;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    free(rows);
    png_destroy_write_struct(&png, &info);
    out->data = c.out;
    out->size = c.out_size;
    return 0;
}

void cpng_free_bytes(cpng_bytes *bytes) {
    free(bytes->data);
    bytes->data = NULL;
}
