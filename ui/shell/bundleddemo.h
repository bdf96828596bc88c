// Where the bundled demo (resources/demo-model and resources/demo/) is: next to the executable in a
// build tree (bin/../../resources) or an install (bin/../share/dpo-studio), or in the working directory.
// The pages use it as their default model so that a first start works without any download.
#pragma once

#include <QString>

// The demo model directory (absolute, holding config.json), or an empty string when it is not there.
QString bundledDemoModelDir();
