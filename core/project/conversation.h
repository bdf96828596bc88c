// Conversation rendering: a stored message list (prompts.messages_json, completions.messages_json: TRL's
// [{"role","content"}, ...] as compact JSON) as Markdown for the Label and Data pages, and as a one-line
// summary for table cells.
//
// What it does: each turn led by its role in bold ("**User:** ..."; System / User / Assistant / Tool, other
// roles as given; a turn that opens with a list, code or heading starts below its label), contents as
// Markdown (a code fence left open is closed inside its turn), content parts as their text (other parts
// named, e.g. "[image]"), assistant tool calls as one compact line each, and a long system
// message folded to its first lines plus a link (kExpandHref) to the full text.
//
// What it does not do: no widgets (MarkdownView follows the links), no chat templates (that is what a model
// sees, not what an annotator reads). Plain text, and a single plain user or assistant message, are shown
// exactly as the stored text, so plain prompts and completions look as they always did.
#pragma once

#include <QString>

namespace dpo {

// Link targets in the rendered Markdown: open every fold / fold again.
inline constexpr char kExpandHref[] = "dpo-studio:expand";
inline constexpr char kCollapseHref[] = "dpo-studio:collapse";

struct ConversationMarkdown {
    QString markdown; // long system messages folded
    QString expanded; // the same with every fold open; empty when nothing was folded
};

// A system message longer than this many characters or lines is folded.
inline constexpr int kFoldChars = 400;
inline constexpr int kFoldLines = 6;

// messagesJson: a stored message list ("" for plain rows); text: the stored text of the same row, shown
// as it is when there is no message list to render (or the JSON is not one).
ConversationMarkdown conversationMarkdown(const QString &messagesJson, const QString &text);

// Whether messagesJson is a conversation worth showing as one (more than a single plain turn).
bool isConversation(const QString &messagesJson);
// Its number of messages; 0 when it is not a conversation.
int conversationTurns(const QString &messagesJson);

// The label a turn is shown under (without Markdown): "System", "User", "Assistant", "Tool", other roles as
// given.
QString conversationRoleLabel(const QString &role);

// One line: "3 turns · <last user message>" for a conversation, the text itself otherwise.
QString conversationSummary(const QString &messagesJson, const QString &text);

} // namespace dpo
