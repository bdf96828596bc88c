// TrainOptionsForm: the Train page's left pane, the form <-> dpo::TrainConfig. The options are grouped as in
// TRL (model and data through the embedded TrainDataPanel, DPO, optimisation, sequence, checkpoints and
// output, hardware), each with a tooltip and TRL's default. Presets are the TrainConfig JSON that
// `dpo-cli train --config` reads; "Copy as dpo-cli" writes the equivalent command line. Options are
// validated with TrainConfig::validate as they are typed (and the data choices' own checks); the message
// line under the form shows the result, or whatever the page reports meanwhile (setMessage).
// Not here: starting or watching a run (TrainRunControl), the runs list (TrainRunsBrowser).
#pragma once

#include "engine/training/train_config.h"

#include "project/project_store.h"

#include <QHash>
#include <QWidget>

class QCheckBox;
class QComboBox;
class QFormLayout;
class QLabel;
class QLineEdit;
class QListWidget;
class QSpinBox;
class QTimer;
class TrainDataPanel;

class TrainOptionsForm : public QWidget {
    Q_OBJECT
public:
    // data: the Model and Data boxes, shown at the top of the form; the form reads and sets its paths.
    explicit TrainOptionsForm(TrainDataPanel *data, QWidget *parent = nullptr);

    // Parses the form; validate: also TrainConfig::validate (and the data panel's checks). On failure
    // returns false with a message naming the option.
    bool buildConfig(dpo::TrainConfig *config, QString *error, bool validate = true) const;
    void setConfig(const dpo::TrainConfig &config); // every option, data paths included
    void resetToDefaults();
    bool savePreset(const QString &path, QString *error = nullptr) const;
    bool loadPreset(const QString &path, QString *error = nullptr);
    // A run's recorded options into the form, for a new run in a fresh output directory.
    void loadRunConfig(const dpo::Run &run);
    // The dpo-cli command line reproducing the form (options that differ from the defaults).
    QString cliCommand(QString *error = nullptr) const;
    // Data-parallel processes, one per GPU ("Devices", offered when more than one CUDA device is
    // visible); 1 otherwise.
    int devices() const;
    // Called with the number of CUDA devices once it is known (off the GUI thread at start-up).
    void addCudaDevices(int count);
    void copyCliCommand();
    // Sets one option by its TrainConfig key ("beta", "max_steps", "loss_type" as "sigmoid,hinge",
    // "shuffle" as "true"/"false", ...). Returns false for an unknown key.
    bool setOption(const QString &key, const QString &text);
    QString optionText(const QString &key) const;

    void setOutputDir(const QString &dir);
    QString outputDir() const;
    void newOutputDir();                                    // a fresh run-YYYYMMDD-HHMMSS under runsBaseDir()
    bool outputDirIsAuto() const { return m_outputAuto; } // chosen by newOutputDir, not by the user
    QString runsBaseDir() const;                            // next to the project file, else the app's data

    void setMessage(const QString &text, bool error);
    QString message() const;
    // While a run is in progress the message line shows the run's state: validation does not overwrite it.
    void setBusy(bool busy) { m_busy = busy; }

signals:
    void errorShown(const QString &message);

private:
    QWidget *buildOptions();
    QLineEdit *addDouble(QFormLayout *form, const QString &key, const QString &label, const QString &tip);
    QSpinBox *addInt(QFormLayout *form, const QString &key, const QString &label, const QString &tip, int min,
                     int max);
    QComboBox *addCombo(QFormLayout *form, const QString &key, const QString &label, const QString &tip,
                        const QStringList &items);
    QCheckBox *addCheck(QFormLayout *form, const QString &key, const QString &text, const QString &tip);
    void scheduleValidation();
    void validateForm();
    void updateReferenceWidgets();
    void updateMethodWidgets();
    void updateMemoryEstimate();

public:
    // The memory estimate shown under the method choice ("" before a model is inspected).
    QString memoryEstimateText() const;

private:

    TrainDataPanel *m_data;
    QHash<QString, QWidget *> m_fields; // TrainConfig key -> editor (simple one-to-one options)
    QListWidget *m_lossTypes;
    QLineEdit *m_lossWeights;
    QLineEdit *m_loraTargets; // lora_target_modules, comma-separated (empty = attention and MLP projections)
    QLabel *m_memoryLabel;
    QFormLayout *m_hardwareForm = nullptr;
    QSpinBox *m_devices = nullptr;
    QComboBox *m_refMode;
    QLineEdit *m_refModelEdit;
    QLineEdit *m_outputEdit;
    QLabel *m_messageLabel;
    QTimer *m_validateTimer;
    bool m_outputAuto = true;
    bool m_busy = false;
};
