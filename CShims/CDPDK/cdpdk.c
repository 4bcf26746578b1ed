#include "cdpdk.h"
