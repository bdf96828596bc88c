#include "ui/shell/backgroundtask.h"

#include <QEventLoop>
#include <QFutureWatcher>
#include <QProgressDialog>
#include <QTimer>
#include <QtConcurrent>

bool runBackgroundTaskImpl(QWidget *parent, const QString &title, const QString &label,
    const std::function<void(TaskControl &)> &work, QString *error)
{
    TaskControl control;
    QString failure;
    bool ok = true;

    QProgressDialog dlg(label, QObject::tr("Cancel"), 0, 0, parent);
    dlg.setWindowTitle(title);
    dlg.setWindowModality(Qt::WindowModal);
    dlg.setMinimumDuration(300); // quick jobs finish before a dialog flashes up
    dlg.setAutoClose(false);
    dlg.setAutoReset(false);
    dlg.setValue(0);

    QFutureWatcher<void> watcher;
    QEventLoop loop;
    QObject::connect(&watcher, &QFutureWatcher<void>::finished, &loop, &QEventLoop::quit);
    QObject::connect(&dlg, &QProgressDialog::canceled, &dlg, [&]() {
        control.cancel = true;
        dlg.setLabelText(QObject::tr("Cancelling…"));
    });
    QTimer poll;
    poll.setInterval(100);
    QObject::connect(&poll, &QTimer::timeout, &dlg, [&]() {
        const qint64 total = control.total.load();
        const qint64 done = control.done.load();
        if (total > 0) {
            // QProgressDialog takes ints: scale to permille for byte counts beyond 2 GiB.
            dlg.setMaximum(1000);
            dlg.setValue(int(std::min<qint64>(1000, done * 1000 / total)));
        }
    });
    poll.start();

    watcher.setFuture(QtConcurrent::run([&]() {
        try {
            work(control);
        } catch (const std::exception &e) {
            failure = QString::fromUtf8(e.what());
            ok = false;
        } catch (...) {
            failure = QObject::tr("unknown error");
            ok = false;
        }
    }));
    if (!watcher.isFinished())
        loop.exec();
    watcher.waitForFinished();
    poll.stop();
    dlg.reset();
    if (!ok && error)
        *error = failure;
    return ok;
}
