//! chat: approvals where approvers already are. Each chat is a notifier and
//! a review channel over `gate`; none of them holds an approval rule.

pub mod slack;
