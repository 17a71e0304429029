#include "cvbridge.h"

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>
#include <opencv2/photo.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

struct cvb_buffer { std::vector<uint8_t> bytes; };
struct cvb_cascade { cv::CascadeClassifier classifier; };

namespace {

thread_local std::string last_error;

// OpenCV prints warnings (e.g. "can't read header") to stderr by default; the CLI
// promises one line per error, so the bridge reports through its return codes only.
struct QuietLogs {
    QuietLogs() { cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT); }
} quiet_logs;

// Runs `body`, turning any exception into -1 plus a one-line message.
template <typename F> int guarded(const char *what, F body) {
    try {
        body();
        last_error.clear();
        return 0;
    } catch (const cv::Exception &e) {
        last_error = std::string(what) + ": " + (e.err.empty() ? e.what() : e.err);
    } catch (const std::exception &e) {
        last_error = std::string(what) + ": " + e.what();
    } catch (...) {
        last_error = std::string(what) + ": unknown error";
    }
    for (char &c : last_error) if (c == '\n' || c == '\r') c = ' ';
    return -1;
}

struct Failure : std::exception {
    std::string message;
    explicit Failure(std::string m) : message(std::move(m)) {}
    const char *what() const noexcept override { return message.c_str(); }
};

// Views `planes` consecutive float planes as single-channel Mats (no copy).
std::vector<cv::Mat> plane_views(const float *p, int w, int h, int planes) {
    if (w <= 0 || h <= 0 || planes <= 0) throw Failure("empty image");
    std::vector<cv::Mat> out;
    for (int i = 0; i < planes; i++)
        out.emplace_back(h, w, CV_32F, const_cast<float *>(p) + size_t(i) * w * h);
    return out;
}

// Codec libraries under imdecode report damaged data by printing warnings to stderr
// (libjpeg: "Corrupt JPEG data: premature end of data segment") and still return an image.
// While it lives, this sends file descriptor 2 to a temporary file so the bridge can read
// those warnings and turn them into an error instead. A mutex keeps concurrent decodes from
// interleaving the redirection; other threads' stderr output during a decode is lost.
class StderrCapture {
    static std::mutex &lock() { static std::mutex m; return m; }
    std::lock_guard<std::mutex> guard{lock()};
    FILE *file = nullptr;
    int saved = -1;

  public:
    StderrCapture() {
        fflush(stderr);
        file = tmpfile();
        if (file) saved = dup(2);
        if (saved >= 0) dup2(fileno(file), 2);
    }
    // Restores stderr and returns what was written meanwhile.
    std::string finish() {
        std::string text;
        if (saved >= 0) {
            fflush(stderr);
            dup2(saved, 2);
            close(saved);
            saved = -1;
        }
        if (file) {
            rewind(file);
            char chunk[512];
            size_t n;
            while ((n = fread(chunk, 1, sizeof chunk, file)) > 0 && text.size() < 4096) text.append(chunk, n);
            fclose(file);
            file = nullptr;
        }
        return text;
    }
    ~StderrCapture() { finish(); }
};

// The first warning that means the pixels are damaged, or "". libjpeg's "extraneous bytes
// before marker" is padding many cameras write, harmless to the image.
std::string damage_warning(const std::string &text) {
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(start, end - start);
        if (!line.empty() && line.find("extraneous bytes") == std::string::npos) return line;
        start = end + 1;
    }
    return "";
}

cv::Mat to_bgr8(const float *planar, int w, int h) {
    auto v = plane_views(planar, w, h, 3);
    std::vector<cv::Mat> bgr = {v[2], v[1], v[0]};
    cv::Mat merged, out;
    cv::merge(bgr, merged);
    merged.convertTo(out, CV_8U, 255.0);  // saturating, rounds to nearest
    return out;
}

void from_bgr8(const cv::Mat &bgr, float *planar) {
    int w = bgr.cols, h = bgr.rows;
    auto v = plane_views(planar, w, h, 3);
    std::vector<cv::Mat> ch;
    cv::split(bgr, ch);
    for (int i = 0; i < 3; i++) ch[2 - i].convertTo(v[i], CV_32F, 1.0 / 255.0);
}

cv::Mat mask8(const float *mask, int w, int h) {
    cv::Mat m(h, w, CV_32F, const_cast<float *>(mask)), out;
    cv::compare(m, 0.5, out, cv::CMP_GT);
    return out;
}

}  // namespace

extern "C" {

const char *cvb_opencv_version(void) { return CV_VERSION; }
const char *cvb_last_error(void) { return last_error.c_str(); }

const void *cvb_buffer_data(const cvb_buffer *b) { return b->bytes.data(); }
size_t cvb_buffer_size(const cvb_buffer *b) { return b->bytes.size(); }
void cvb_buffer_free(cvb_buffer *b) { delete b; }

int cvb_decode(const uint8_t *data, size_t size, int unchanged,
               int *width, int *height, int *channels, int *depth, cvb_buffer **pixels) {
    *pixels = nullptr;
    return guarded("decode", [&] {
        cv::Mat raw(1, int(size), CV_8U, const_cast<uint8_t *>(data));
        int flags = unchanged ? cv::IMREAD_UNCHANGED : cv::IMREAD_COLOR;
        cv::Mat m;
        std::string warnings;
        {
            StderrCapture capture;
            m = cv::imdecode(raw, flags);
            warnings = capture.finish();
        }
        if (m.empty()) throw Failure("not a readable image (corrupt, truncated or unsupported)");
        std::string damage = damage_warning(warnings);
        if (!damage.empty()) throw Failure("damaged image data (" + damage + ")");
        if (m.depth() != CV_8U && m.depth() != CV_16U) {
            cv::Mat f;
            double scale = m.depth() == CV_32F || m.depth() == CV_64F ? 65535.0 : 1.0;
            m.convertTo(f, CV_16U, scale);
            m = f;
        }
        cv::Mat rgb;
        switch (m.channels()) {
            case 1: rgb = m; break;
            case 3: cv::cvtColor(m, rgb, cv::COLOR_BGR2RGB); break;
            case 4: cv::cvtColor(m, rgb, cv::COLOR_BGRA2RGBA); break;
            default: throw Failure("unsupported channel count " + std::to_string(m.channels()));
        }
        if (!rgb.isContinuous()) rgb = rgb.clone();
        auto *b = new cvb_buffer;
        b->bytes.assign(rgb.data, rgb.data + rgb.total() * rgb.elemSize());
        *width = rgb.cols;
        *height = rgb.rows;
        *channels = rgb.channels();
        *depth = rgb.depth() == CV_16U ? 16 : 8;
        *pixels = b;
    });
}

int cvb_encode(const char *ext, const void *pixels, int width, int height, int channels,
               int depth, int quality, cvb_buffer **encoded) {
    *encoded = nullptr;
    return guarded("encode", [&] {
        if (channels != 1 && channels != 3 && channels != 4) throw Failure("unsupported channel count");
        int type = CV_MAKETYPE(depth == 16 ? CV_16U : CV_8U, channels);
        cv::Mat m(height, width, type, const_cast<void *>(pixels)), bgr;
        if (channels == 3) cv::cvtColor(m, bgr, cv::COLOR_RGB2BGR);
        else if (channels == 4) cv::cvtColor(m, bgr, cv::COLOR_RGBA2BGRA);
        else bgr = m;
        std::vector<int> params = {cv::IMWRITE_JPEG_QUALITY, quality, cv::IMWRITE_WEBP_QUALITY, quality};
        std::vector<uint8_t> out;
        if (!cv::imencode(ext, bgr, out, params)) throw Failure(std::string("cannot encode as ") + ext);
        auto *b = new cvb_buffer;
        b->bytes = std::move(out);
        *encoded = b;
    });
}

int cvb_resize(const float *src, int width, int height, int planes,
               float *dst, int dst_width, int dst_height, int interpolation) {
    return guarded("resize", [&] {
        auto in = plane_views(src, width, height, planes);
        auto out = plane_views(dst, dst_width, dst_height, planes);
        for (int i = 0; i < planes; i++) {
            cv::Mat r;
            cv::resize(in[i], r, cv::Size(dst_width, dst_height), 0, 0, interpolation);
            r.copyTo(out[i]);
        }
    });
}

int cvb_warp_affine(const float *src, int width, int height, int planes, const double m[6],
                    float *dst, int dst_width, int dst_height, int interpolation,
                    int border_mode, float border_value) {
    return guarded("warpAffine", [&] {
        auto in = plane_views(src, width, height, planes);
        auto out = plane_views(dst, dst_width, dst_height, planes);
        cv::Mat M(2, 3, CV_64F, const_cast<double *>(m));
        for (int i = 0; i < planes; i++) {
            cv::Mat r;
            cv::warpAffine(in[i], r, M, cv::Size(dst_width, dst_height), interpolation,
                           border_mode, cv::Scalar(border_value));
            r.copyTo(out[i]);
        }
    });
}

int cvb_invert_affine(const double m[6], double inverse[6]) {
    return guarded("invertAffineTransform", [&] {
        cv::Mat M(2, 3, CV_64F, const_cast<double *>(m)), inv;
        double det = m[0] * m[4] - m[1] * m[3];
        if (det == 0 || !std::isfinite(det)) throw Failure("the transform is singular");
        cv::invertAffineTransform(M, inv);
        std::memcpy(inverse, inv.ptr<double>(), 6 * sizeof(double));
    });
}

int cvb_warp_rotated_rect_u8(const uint8_t *src, int width, int height, int channels,
                             float centre_x, float centre_y, float rect_width, float rect_height,
                             float angle_degrees, uint8_t *dst, int dst_width, int dst_height,
                             int border_mode) {
    return guarded("warpPerspective", [&] {
        if (width <= 0 || height <= 0 || dst_width <= 0 || dst_height <= 0) throw Failure("empty image");
        if (channels < 1 || channels > 4) throw Failure("1 to 4 channels expected");
        if (!(rect_width > 0) || !(rect_height > 0)) throw Failure("the rectangle has no area");
        cv::Mat in(height, width, CV_8UC(channels), const_cast<uint8_t *>(src));
        cv::Mat out(dst_height, dst_width, CV_8UC(channels), dst);
        // The corners in boxPoints' order (bottom-left, top-left, top-right, bottom-right of the
        // unrotated rectangle) go to the output's, as MediaPipe pairs them.
        cv::Mat corners;
        cv::boxPoints(cv::RotatedRect(cv::Point2f(centre_x, centre_y), cv::Size2f(rect_width, rect_height), angle_degrees), corners);
        float w = float(dst_width), h = float(dst_height);
        float to[8] = {0, h, 0, 0, w, 0, w, h};
        cv::Mat M = cv::getPerspectiveTransform(corners, cv::Mat(4, 2, CV_32F, to));
        cv::Mat r;
        cv::warpPerspective(in, r, M, cv::Size(dst_width, dst_height), cv::INTER_LINEAR, border_mode, cv::Scalar(0, 0, 0, 0));
        r.copyTo(out);
    });
}

int cvb_crop_and_fit_u8(const uint8_t *src, int width, int height, int channels,
                        int centre_x, int centre_y, int rect_width, int rect_height, float angle_degrees,
                        uint8_t *dst, int dst_width, int dst_height, int flip, int border_mode) {
    return guarded("cropAndFit", [&] {
        if (width <= 0 || height <= 0 || dst_width <= 0 || dst_height <= 0) throw Failure("empty image");
        if (channels < 1 || channels > 4) throw Failure("1 to 4 channels expected");
        if (rect_width <= 0 || rect_height <= 0) throw Failure("the rectangle has no area");
        cv::Mat in(height, width, CV_8UC(channels), const_cast<uint8_t *>(src));
        cv::Mat out(dst_height, dst_width, CV_8UC(channels), dst);
        cv::RotatedRect rect(cv::Point2f(float(centre_x), float(centre_y)), cv::Size2f(float(rect_width), float(rect_height)), angle_degrees);
        cv::Mat corners;
        cv::boxPoints(rect, corners);
        // ImageCroppingCalculator: the corners go to the corner pixels' centres, and the warp
        // takes the nearest pixel (flags 0).
        float w = rect.size.width, h = rect.size.height;
        float to[8] = {0, h - 1, 0, 0, w - 1, 0, w - 1, h - 1};
        cv::Mat M = cv::getPerspectiveTransform(corners, cv::Mat(4, 2, CV_32F, to));
        cv::Mat crop;
        cv::warpPerspective(in, crop, M, cv::Size(int(w), int(h)), cv::INTER_NEAREST, border_mode, cv::Scalar(0, 0, 0, 0));
        // ImageTransformationCalculator, FIT: scaled to fit, letterboxed with black, then flipped.
        float scale = std::min(float(dst_width) / crop.cols, float(dst_height) / crop.rows);
        int tw = int(std::round(crop.cols * scale)), th = int(std::round(crop.rows * scale));
        cv::Mat scaled;
        cv::resize(crop, scaled, cv::Size(tw, th), 0, 0, scale < 1.0f ? cv::INTER_AREA : cv::INTER_LINEAR);
        int top = (dst_height - th) / 2, left = (dst_width - tw) / 2;
        cv::Mat boxed;
        cv::copyMakeBorder(scaled, boxed, top, dst_height - th - top, left, dst_width - tw - left, cv::BORDER_CONSTANT, cv::Scalar(0, 0, 0, 0));
        if (flip) cv::flip(boxed, boxed, 1);
        boxed.copyTo(out);
    });
}

namespace {

// A Gaussian blur of large σ, as cv::GaussianBlur with BORDER_REFLECT_101 gives it, at a
// fraction of the cost: OpenCV's kernel is 8σ + 1 taps, so a low-pass at a third of a face
// 1500 px wide took 12 s a plane. The plane is padded by reflection (4σ, the kernel's reach),
// averaged down by an integer factor f (σ/f about 8 px), blurred there by what remains of σ
// after the averaging's and the upsampling's own spread, and brought back up bilinearly.
// Against OpenCV's own result it differs by under 5e-4 of the plane's range (measured on face
// photos and masks, σ 16 to 350 px), well below an 8-bit step.
void wide_gaussian(const cv::Mat &in, cv::Mat &out, double sigma, int f) {
    const int h = in.rows, w = in.cols, pad = (int)std::ceil(4 * sigma);
    const int hp = (h + 2 * pad + f - 1) / f * f, wp = (w + 2 * pad + f - 1) / f * f;
    cv::Mat padded, small, blurred, up;
    cv::copyMakeBorder(in, padded, pad, hp - h - pad, pad, wp - w - pad, cv::BORDER_REFLECT_101);
    cv::resize(padded, small, cv::Size(wp / f, hp / f), 0, 0, cv::INTER_AREA);
    const double spread = (double(f) * f - 1) / 12 + double(f) * f / 6;
    const double rest = std::sqrt(std::max(sigma * sigma - spread, 0.25)) / f;
    cv::GaussianBlur(small, blurred, cv::Size(0, 0), rest, rest, cv::BORDER_REFLECT_101);
    cv::resize(blurred, up, cv::Size(wp, hp), 0, 0, cv::INTER_LINEAR);
    up(cv::Rect(pad, pad, w, h)).copyTo(out);
}

} // namespace

int cvb_gaussian_blur(const float *src, int width, int height, int planes, float *dst,
                      double sigma, int ksize) {
    return guarded("GaussianBlur", [&] {
        auto in = plane_views(src, width, height, planes);
        auto out = plane_views(dst, width, height, planes);
        // Below 16 px the direct kernel is cheap and exact. So is it, nearly, where σ is large
        // against the plane, whose padding would then outgrow it many times over (a feather
        // of thousands of pixels): there the direct kernel runs, slowly but in bounded memory.
        const double padded = (width + 8 * sigma) * (height + 8 * sigma);
        const int factor = ksize == 0 && sigma >= 16 && padded <= 2.0 * width * height + 16e6 ? (int)(sigma / 8) : 0;
        for (int i = 0; i < planes; i++) {
            cv::Mat r;
            if (factor >= 2) wide_gaussian(in[i], r, sigma, factor);
            else cv::GaussianBlur(in[i], r, cv::Size(ksize, ksize), sigma, sigma, cv::BORDER_REFLECT_101);
            r.copyTo(out[i]);
        }
    });
}

namespace {

// Whether OpenCV's elliptical structuring element of radius r is the disc the binary path
// assumes: row dy reaches |dx| <= round(sqrt(r^2 - dy^2)), that is (2|dx| - 1)^2 + 4 dy^2 < 4 r^2
// for dx != 0 and |dy| <= r for dx = 0.
bool ellipse_is_disc(const cv::Mat &k, int r) {
    for (int y = 0; y <= 2 * r; y++) {
        long dy = y - r;
        for (int x = 0; x <= 2 * r; x++) {
            long dx = std::labs((long)(x - r));
            bool in = dx == 0 ? std::labs(dy) <= r : (2 * dx - 1) * (2 * dx - 1) + 4 * dy * dy < 4L * r * r;
            if (in != (k.at<uint8_t>(y, x) != 0)) return false;
        }
    }
    return true;
}

// Dilation of a 0/1 plane by that disc (erosion as the dilation of the complement), exactly as
// cv::dilate/erode give it, in time linear in the pixels whatever the radius: OpenCV's cost
// grows with the kernel's area, and the face masks of a large photo are dilated by a tenth of
// the face, a hundred pixels or more. A pixel is set when some row y' within r holds a set
// pixel D columns away with (2D - 1)^2 + 4 (y - y')^2 < 4 r^2 (D = 0 counts as -1): the
// horizontal distances per row, then the lower envelope of parabolas down each column
// (Felzenszwalb and Huttenlocher's distance transform).
void binary_dilate(const float *in, float *out, int w, int h, bool erode, int r) {
    const double inf = 1e300;
    std::vector<double> g((size_t)w * h);
    auto set = [&](size_t i) { return erode ? in[i] == 0.0f : in[i] == 1.0f; };
    std::vector<long> d(w);
    for (int y = 0; y < h; y++) {
        const size_t row = (size_t)y * w;
        long last = -1;
        for (int x = 0; x < w; x++) {
            if (set(row + x)) last = x;
            d[x] = last < 0 ? -1 : x - last;
        }
        last = -1;
        for (int x = w - 1; x >= 0; x--) {
            if (set(row + x)) last = x;
            if (last >= 0 && (d[x] < 0 || last - x < d[x])) d[x] = last - x;
        }
        for (int x = 0; x < w; x++)
            g[row + x] = d[x] < 0 ? inf : d[x] == 0 ? -1.0 : (double)((2 * d[x] - 1) * (2 * d[x] - 1));
    }
    // Down each column, on a transposed copy so the column is contiguous (walking a column of
    // a wide plane in place touches a new cache line per row).
    std::vector<double> gt((size_t)w * h);
    const int block = 32;
    for (int y0 = 0; y0 < h; y0 += block)
        for (int x0 = 0; x0 < w; x0 += block)
            for (int y = y0; y < std::min(h, y0 + block); y++)
                for (int x = x0; x < std::min(w, x0 + block); x++) gt[(size_t)x * h + y] = g[(size_t)y * w + x];
    std::vector<uint8_t> hits((size_t)w * h);
    std::vector<int> v(h);
    std::vector<double> z(h + 1);
    const double limit = 4.0 * r * r;
    for (int x = 0; x < w; x++) {
        // Parabolas f(q) + 4 (p - q)^2 for the rows q that hold a set pixel.
        const double *f = gt.data() + (size_t)x * h;
        uint8_t *hit = hits.data() + (size_t)x * h;
        int k = -1;
        for (int q = 0; q < h; q++) {
            if (f[q] >= inf) continue;
            if (k < 0) { k = 0; v[0] = q; z[0] = -inf; z[1] = inf; continue; }
            double s;
            while (true) {
                int p = v[k];
                s = ((f[q] + 4.0 * q * q) - (f[p] + 4.0 * p * p)) / (8.0 * (q - p));
                if (s <= z[k] && k > 0) { k--; continue; }
                break;
            }
            k++; v[k] = q; z[k] = s; z[k + 1] = inf;
        }
        int j = 0;
        for (int y = 0; y < h; y++) {
            bool any = false;
            if (k >= 0) {
                while (z[j + 1] < y) j++;
                // The nearest parabola, and its neighbours in case rounding put the boundary a hair off.
                for (int t = std::max(0, j - 1); t <= std::min(k, j + 1) && !any; t++) {
                    double dy = y - v[t];
                    any = f[v[t]] + 4.0 * dy * dy < limit;
                }
            }
            hit[y] = any;
        }
    }
    for (int y0 = 0; y0 < h; y0 += block)
        for (int x0 = 0; x0 < w; x0 += block)
            for (int y = y0; y < std::min(h, y0 + block); y++)
                for (int x = x0; x < std::min(w, x0 + block); x++) {
                    const bool any = hits[(size_t)x * h + y] != 0;
                    out[(size_t)y * w + x] = erode ? (any ? 0.0f : 1.0f) : (any ? 1.0f : 0.0f);
                }
}

} // namespace

int cvb_morphology(const float *src, int width, int height, int planes, float *dst,
                   int dilate, int radius) {
    return guarded(dilate ? "dilate" : "erode", [&] {
        auto in = plane_views(src, width, height, planes);
        auto out = plane_views(dst, width, height, planes);
        cv::Mat k = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * radius + 1, 2 * radius + 1));
        const bool disc = radius > 2 && ellipse_is_disc(k, radius);
        const size_t n = (size_t)width * height;
        for (int i = 0; i < planes; i++) {
            const float *p = src + i * n;
            if (disc && std::all_of(p, p + n, [](float v) { return v == 0.0f || v == 1.0f; })) {
                // Either way nothing is set farther than the radius from the set pixels' box, and
                // nothing inside it depends on pixels beyond that: only the box grown by the
                // radius is worked (a face's or a person's mask in a large photo is a small part).
                int x0 = width, y0 = height, x1 = -1, y1 = -1;
                for (int y = 0; y < height; y++)
                    for (int x = 0; x < width; x++)
                        if (p[(size_t)y * width + x] == 1.0f) {
                            x0 = std::min(x0, x); x1 = std::max(x1, x); y0 = std::min(y0, y); y1 = std::max(y1, y);
                        }
                float *o = dst + i * n;
                std::fill(o, o + n, 0.0f);
                if (x1 < 0) continue;
                x0 = std::max(0, x0 - radius); y0 = std::max(0, y0 - radius);
                x1 = std::min(width - 1, x1 + radius); y1 = std::min(height - 1, y1 + radius);
                const int cw = x1 - x0 + 1, ch = y1 - y0 + 1;
                std::vector<float> crop((size_t)cw * ch), result((size_t)cw * ch);
                for (int y = 0; y < ch; y++) std::copy_n(p + (size_t)(y0 + y) * width + x0, cw, crop.data() + (size_t)y * cw);
                binary_dilate(crop.data(), result.data(), cw, ch, !dilate, radius);
                for (int y = 0; y < ch; y++) std::copy_n(result.data() + (size_t)y * cw, cw, o + (size_t)(y0 + y) * width + x0);
                continue;
            }
            cv::Mat r;
            if (dilate) cv::dilate(in[i], r, k);
            else cv::erode(in[i], r, k);
            r.copyTo(out[i]);
        }
    });
}

int cvb_fill_polygons(float *plane, int width, int height, const double *xy, const int *counts,
                      int polygons, float value) {
    return guarded("fillPoly", [&] {
        if (width <= 0 || height <= 0 || polygons < 0) throw Failure("bad polygon canvas");
        cv::Mat m(height, width, CV_32F, plane);
        const int shift = 8;
        std::vector<std::vector<cv::Point>> polys;
        size_t k = 0;
        for (int p = 0; p < polygons; p++) {
            if (counts[p] < 3) throw Failure("a polygon needs at least 3 vertices");
            std::vector<cv::Point> v;
            for (int i = 0; i < counts[p]; i++, k++) {
                double x = xy[2 * k], y = xy[2 * k + 1];
                // Far-away vertices would overflow the fixed-point coordinates.
                if (!(std::fabs(x) < 1e6 && std::fabs(y) < 1e6)) throw Failure("a polygon vertex is not finite or too far");
                v.emplace_back(int(std::lround(x * (1 << shift))), int(std::lround(y * (1 << shift))));
            }
            polys.push_back(std::move(v));
        }
        if (!polys.empty()) cv::fillPoly(m, polys, cv::Scalar(value), cv::LINE_8, shift);
    });
}

int cvb_seamless_clone(const float *src, const float *dst, const float *mask,
                       int width, int height, float *out) {
    return guarded("seamlessClone", [&] {
        cv::Mat s = to_bgr8(src, width, height), d = to_bgr8(dst, width, height);
        cv::Mat m = mask8(mask, width, height);
        // The solver needs a one-pixel frame of known dst pixels around the region.
        cv::rectangle(m, cv::Rect(0, 0, width, height), cv::Scalar(0), 1);
        cv::Rect r = cv::boundingRect(m);
        if (r.area() == 0) throw Failure("the mask is empty");
        cv::Point centre(r.x + r.width / 2, r.y + r.height / 2);
        cv::Mat blended;
        cv::seamlessClone(s, d, m, centre, blended, cv::NORMAL_CLONE);
        from_bgr8(blended, out);
    });
}

int cvb_inpaint_telea(const float *src, const float *mask, int width, int height,
                      double radius, float *out) {
    return guarded("inpaint", [&] {
        cv::Mat s = to_bgr8(src, width, height), m = mask8(mask, width, height), r;
        cv::inpaint(s, m, r, radius, cv::INPAINT_TELEA);
        from_bgr8(r, out);
    });
}

int cvb_cascade_load(const char *path, cvb_cascade **cascade) {
    *cascade = nullptr;
    return guarded("CascadeClassifier", [&] {
        auto *c = new cvb_cascade;
        if (!c->classifier.load(path) || c->classifier.empty()) {
            delete c;
            throw Failure(std::string("cannot load cascade ") + path);
        }
        *cascade = c;
    });
}

void cvb_cascade_free(cvb_cascade *cascade) { delete cascade; }

int cvb_cascade_detect(cvb_cascade *cascade, const uint8_t *grey, int width, int height,
                       double scale_factor, int min_neighbors, int min_size,
                       cvb_buffer **detections) {
    *detections = nullptr;
    return guarded("detectMultiScale", [&] {
        cv::Mat g(height, width, CV_8U, const_cast<uint8_t *>(grey)), eq;
        cv::equalizeHist(g, eq);
        std::vector<cv::Rect> rects;
        std::vector<int> counts;
        cascade->classifier.detectMultiScale(eq, rects, counts, scale_factor, min_neighbors, 0,
                                             cv::Size(min_size, min_size));
        auto *b = new cvb_buffer;
        b->bytes.resize(rects.size() * 5 * sizeof(int32_t));
        auto *p = reinterpret_cast<int32_t *>(b->bytes.data());
        for (size_t i = 0; i < rects.size(); i++) {
            p[5 * i] = rects[i].x;
            p[5 * i + 1] = rects[i].y;
            p[5 * i + 2] = rects[i].width;
            p[5 * i + 3] = rects[i].height;
            p[5 * i + 4] = i < counts.size() ? counts[i] : 0;
        }
        *detections = b;
    });
}

}  // extern "C"

int cvb_nl_means_colored(const uint8_t *src, int width, int height, float h, float h_color, uint8_t *dst) {
    return guarded("fastNlMeansDenoisingColored", [&] {
        // OpenCV's colour images are BGR: it converts to Lab assuming that order.
        cv::Mat rgb(height, width, CV_8UC3, const_cast<uint8_t *>(src)), bgr, den, back;
        cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
        cv::fastNlMeansDenoisingColored(bgr, den, h, h_color, 7, 21);
        cv::cvtColor(den, back, cv::COLOR_BGR2RGB);
        back.copyTo(cv::Mat(height, width, CV_8UC3, dst));
    });
}
