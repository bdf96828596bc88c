#include "ui/shell/bundleddemo.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStringList>

QString bundledDemoModelDir()
{
    const QString app = QCoreApplication::applicationDirPath();
    const QStringList candidates { app + QStringLiteral("/../resources/demo-model"),
        app + QStringLiteral("/../../resources/demo-model"), app + QStringLiteral("/../share/dpo-studio/demo-model"),
#ifdef DPO_SOURCE_DIR
        QStringLiteral(DPO_SOURCE_DIR "/resources/demo-model"),
#endif
        QStringLiteral("resources/demo-model") };
    for (const QString &c : candidates)
        if (QFileInfo::exists(c + QStringLiteral("/config.json")))
            return QDir::cleanPath(QFileInfo(c).absoluteFilePath());
    return {};
}
