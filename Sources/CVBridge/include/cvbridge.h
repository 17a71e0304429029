#pragma once
// A small extern "C" API over OpenCV 4.6. Every function catches all C++ exceptions
// and reports them as a non-zero status plus a message from cvb_last_error().
#ifdef __cplusplus
extern "C" {
#endif

/// The linked OpenCV version, e.g. "4.6.0".
const char *cvb_opencv_version(void);

#ifdef __cplusplus
}
#endif
