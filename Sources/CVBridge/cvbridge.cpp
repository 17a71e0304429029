#include "cvbridge.h"
#include <opencv2/core.hpp>

extern "C" const char *cvb_opencv_version(void) { return CV_VERSION; }
