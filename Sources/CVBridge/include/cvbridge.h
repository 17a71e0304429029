#pragma once
// A small extern "C" API over OpenCV 4.6 (core, imgproc, imgcodecs, photo, objdetect).
// Every function catches all C++ exceptions: it returns 0 on success and -1 on failure,
// and cvb_last_error() then holds a one-line message for the calling thread.
//
// Images cross this boundary in two layouts:
//   - interleaved 8- or 16-bit pixels in R,G,B(,A) order (codecs), rows packed;
//   - planar float32: `planes` consecutive width*height planes (geometry, filters).
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The linked OpenCV version, e.g. "4.6.0".
const char *cvb_opencv_version(void);
/// The message of the last failing call on this thread ("" if none).
const char *cvb_last_error(void);

/// Bytes owned by the bridge: decoded pixels, encoded files, detections.
typedef struct cvb_buffer cvb_buffer;
const void *cvb_buffer_data(const cvb_buffer *b);
size_t cvb_buffer_size(const cvb_buffer *b);
void cvb_buffer_free(cvb_buffer *b);

/// Decodes JPEG/WebP/BMP/TIFF/... from memory. With `unchanged` = 0 the image is decoded
/// as colour and EXIF orientation is applied (OpenCV 4.6 reads EXIF from JPEG only);
/// with 1 channels and bit depth are kept as stored (no orientation).
/// Outputs interleaved pixels with 1 (grey), 3 (RGB) or 4 (RGBA) channels, depth 8 or 16.
/// Data a codec library warns is damaged (libjpeg's "Corrupt JPEG data ...") is an error;
/// those warnings never reach stderr.
int cvb_decode(const uint8_t *data, size_t size, int unchanged,
               int *width, int *height, int *channels, int *depth, cvb_buffer **pixels);

/// Encodes interleaved pixels (1, 3 or 4 channels in R,G,B,A order; depth 8 or 16) into
/// the format named by `ext` (".jpg", ".webp", ".bmp", ".tif", ...). quality: JPEG/WebP 1...100.
int cvb_encode(const char *ext, const void *pixels, int width, int height, int channels,
               int depth, int quality, cvb_buffer **encoded);

enum { CVB_INTER_NEAREST = 0, CVB_INTER_LINEAR = 1, CVB_INTER_CUBIC = 2, CVB_INTER_AREA = 3 };
enum { CVB_BORDER_CONSTANT = 0, CVB_BORDER_REPLICATE = 1, CVB_BORDER_REFLECT101 = 4 };

int cvb_resize(const float *src, int width, int height, int planes,
               float *dst, int dst_width, int dst_height, int interpolation);

/// dst(x, y) = src(M^-1 (x, y)): `m` is the 2x3 forward matrix, row-major, as cv::warpAffine.
int cvb_warp_affine(const float *src, int width, int height, int planes, const double m[6],
                    float *dst, int dst_width, int dst_height, int interpolation,
                    int border_mode, float border_value);

int cvb_invert_affine(const double m[6], double inverse[6]);

/// MediaPipe's CPU image-to-tensor warp (ImageToTensorCalculator's OpenCV converter): the
/// cv::RotatedRect (centre, size, angle in degrees) of 8-bit interleaved pixels mapped corner
/// to corner onto dst_width x dst_height, via getPerspectiveTransform and a bilinear
/// warpPerspective; border_mode CVB_BORDER_CONSTANT (0) or CVB_BORDER_REPLICATE.
int cvb_warp_rotated_rect_u8(const uint8_t *src, int width, int height, int channels,
                             float centre_x, float centre_y, float rect_width, float rect_height,
                             float angle_degrees, uint8_t *dst, int dst_width, int dst_height,
                             int border_mode);

/// MediaPipe's older CPU crop (ImageCroppingCalculator, then ImageTransformationCalculator with
/// scale_mode FIT), which its iris graph uses: the cv::RotatedRect with whole-pixel centre and
/// size (angle in degrees) mapped by boxPoints onto the *centres* of a rect_width x rect_height
/// crop's corner pixels, nearest-neighbour warpPerspective; then resized to fit dst (INTER_AREA
/// when shrinking, else INTER_LINEAR), centred on black, and mirrored left-right if `flip`.
int cvb_crop_and_fit_u8(const uint8_t *src, int width, int height, int channels,
                        int centre_x, int centre_y, int rect_width, int rect_height, float angle_degrees,
                        uint8_t *dst, int dst_width, int dst_height, int flip, int border_mode);

/// ksize 0 derives the kernel size from sigma. Borders reflect (BORDER_REFLECT_101).
int cvb_gaussian_blur(const float *src, int width, int height, int planes, float *dst,
                      double sigma, int ksize);

/// Erosion (dilate = 0) or dilation with an elliptical kernel of size 2*radius+1.
/// Pixels outside the image do not take part (OpenCV's default morphology border).
int cvb_morphology(const float *src, int width, int height, int planes, float *dst,
                   int dilate, int radius);

/// Poisson blending (cv::seamlessClone, NORMAL_CLONE) of `src` into `dst` where mask > 0.5.
/// src, dst and out are 3 planar float planes of the same size in 0...1 (processed as
/// 8-bit, as OpenCV requires); src is already placed in dst's coordinates.
int cvb_seamless_clone(const float *src, const float *dst, const float *mask,
                       int width, int height, float *out);

/// cv::inpaint with Telea's method over pixels where mask > 0.5; 3 planar planes, 8-bit inside.
int cvb_inpaint_telea(const float *src, const float *mask, int width, int height,
                      double radius, float *out);

/// Fills polygons (cv::fillPoly, 8-connected edges) with `value` on one float plane, in place.
/// `xy` holds x,y pairs of every polygon one after another, `counts` the vertices of each;
/// coordinates are in pixels with 1/256-pixel precision. Overlaps are filled once (a union).
int cvb_fill_polygons(float *plane, int width, int height, const double *xy, const int *counts,
                      int polygons, float value);

/// Haar/LBP cascade from an OpenCV XML file.
typedef struct cvb_cascade cvb_cascade;
int cvb_cascade_load(const char *path, cvb_cascade **cascade);
void cvb_cascade_free(cvb_cascade *cascade);
/// detectMultiScale2 on an 8-bit grey image (histogram-equalised inside). The result holds
/// 5 int32 per detection: x, y, width, height, and the number of merged raw detections.
int cvb_cascade_detect(cvb_cascade *cascade, const uint8_t *grey, int width, int height,
                       double scale_factor, int min_neighbors, int min_size,
                       cvb_buffer **detections);

/// cv::fastNlMeansDenoisingColored on interleaved 8-bit RGB (`src` and `dst` width*height*3):
/// `h` filters luminance, `h_color` colour, with OpenCV's windows (template 7, search 21).
/// The benchmark baseline for the diffusion prior's denoiser.
int cvb_nl_means_colored(const uint8_t *src, int width, int height, float h, float h_color, uint8_t *dst);

#ifdef __cplusplus
}
#endif
