// The header's functions are all static inline; this translation unit only gives SwiftPM a
// source file to build the module from.
#include "sluice_intrinsics.h"
