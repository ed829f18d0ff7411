-- keel — the risk questionnaire: six questions, a score from 1 to 10.
--
-- Each question has four or five answers worth 1 point (most cautious) to
-- 4 or 5 points (most tolerant of risk). The raw total runs from 6 to 28;
-- the risk score is 1 + round(9 * (total - 6) / 22), so all-cautious
-- answers give 1 and all-tolerant answers give 10.
--
-- The questions follow the dimensions that published risk-tolerance
-- scales measure (Grable and Lytton 1999, "Financial risk tolerance
-- revisited: the development of a risk assessment instrument", Financial
-- Services Review 8: investment horizon, reaction to losses, income
-- stability, experience, the trade-off between return and safety) and the
-- capacity-for-loss questions regulators ask advisers to cover (FCA
-- FG11/05, "Assessing suitability"). docs/templates.md lists them in full.

local Q = {}

Q.questions = {
  {
    id = "horizon",
    text = "When will you need most of this money?",
    answers = { "Within 2 years", "In 2 to 5 years", "In 5 to 10 years", "In 10 to 20 years", "In more than 20 years" },
  },
  {
    id = "drop",
    text = "Your investments fall 20% in a few months. What do you do?",
    answers = { "Sell everything", "Sell some", "Do nothing", "Buy more" },
  },
  {
    id = "income",
    text = "How secure is your income over the next five years?",
    answers = { "Not secure", "Somewhat secure", "Secure", "Very secure" },
  },
  {
    id = "experience",
    text = "How much have you invested in shares or funds before?",
    answers = { "Never", "A little", "Some, for a few years", "A lot, for many years" },
  },
  {
    id = "tradeoff",
    text = "Which matters most to you?",
    answers = { "Never losing money", "Mostly safety, some growth", "A balance of growth and safety",
                "Mostly growth", "The highest growth, whatever the swings" },
  },
  {
    id = "loss_capacity",
    text = "If this money lost a third of its value, how would your life change?",
    answers = { "A great deal", "Noticeably", "A little", "Not at all" },
  },
}

-- The lowest and highest raw totals.
local lo, hi = 0, 0
for _, q in ipairs(Q.questions) do
  lo = lo + 1
  hi = hi + #q.answers
end
Q.min_total, Q.max_total = lo, hi

-- score(answers) -> risk score (1..10), raw total. `answers` maps each
-- question id to the 1-based number of the answer chosen; a missing or
-- out-of-range answer is an error naming the question.
function Q.score(answers)
  if type(answers) ~= "table" then error("questionnaire: answers must be a table of question id -> answer number", 2) end
  local known = {}
  for _, q in ipairs(Q.questions) do known[q.id] = q end
  for k in pairs(answers) do
    if not known[k] then error("questionnaire: unknown question '" .. tostring(k) .. "'", 2) end
  end
  local total = 0
  for _, q in ipairs(Q.questions) do
    local a = answers[q.id]
    if math.type(a) ~= "integer" or a < 1 or a > #q.answers then
      error(string.format("questionnaire: question '%s' needs an answer from 1 to %d", q.id, #q.answers), 2)
    end
    total = total + a
  end
  local score = 1 + math.floor(9 * (total - lo) / (hi - lo) + 0.5)
  return score, total
end

return Q
