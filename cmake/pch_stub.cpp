// Compiled only to produce the shared precompiled headers (cmake/DpoBuildSpeed.cmake).
