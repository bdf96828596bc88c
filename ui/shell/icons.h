// Sidebar and toolbar icons, drawn with QPainter in the palette's text colour at the sizes asked
// for. Why not SVG files: Debian's qt6-base has no SVG image plugin, and drawn icons follow a
// light or dark palette without shipping two sets. Names: "label", "data", "train", "evaluate",
// "app", "open", "new", "import", "export", "undo", "edit", "diff", "guidelines".
#pragma once

#include <QIcon>
#include <QString>

namespace Icons {
QIcon get(const QString &name);
} // namespace Icons
