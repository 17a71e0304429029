#pragma once
// Only libpng's simplified png_image_* API is used: it reports errors through
// return codes, where the classic API needs setjmp, which Swift cannot call.
#include <png.h>
