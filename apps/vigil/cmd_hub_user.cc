// vigil hub user add|list|remove: the people who log in to the hub (docs/hub.md, "People and
// logins"). The users file is read again by the hub at every login, so changes apply at once,
// while the hub runs; the hub audits each change when it notices it (at start, before a login).

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/vigil/commands.h"
#include "core/files.h"
#include "hub/config.h"
#include "hub/users.h"

namespace vigil::app {
namespace {

struct UserFlags {
  std::string config, state_dir;
  std::string name, role, password_file;
  bool json = false;
};

core::Result<std::string> UsersFile(const UserFlags& f) {
  VIGIL_ASSIGN_OR_RETURN(hub::HubConfig c, hub::LoadHubConfigWithStateDir(f.config, f.state_dir));
  return c.server.users_file;
}

// The password: the first line of --password-file, else one line of stdin (not echoed when
// stdin is a terminal).
core::Result<std::string> ReadPassword(const UserFlags& f) {
  std::string pw;
  if (!f.password_file.empty()) {
    VIGIL_ASSIGN_OR_RETURN(std::string text, core::ReadFile(f.password_file, 4096));
    pw = text.substr(0, text.find('\n'));
  } else {
    const bool tty = ::isatty(STDIN_FILENO) == 1;
    termios saved{};
    if (tty) {
      std::fprintf(stderr, "Password for %s: ", f.name.c_str());
      ::tcgetattr(STDIN_FILENO, &saved);
      termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    std::getline(std::cin, pw);
    if (tty) {
      ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
      std::fprintf(stderr, "\n");
    }
  }
  if (!pw.empty() && pw.back() == '\r') pw.pop_back();
  if (pw.empty()) {
    return core::InvalidArgument(f.password_file.empty() ? "no password on stdin"
                                                         : f.password_file + ": no password in it");
  }
  return pw;
}

int RunUserAdd(const UserFlags& f) {
  hub::Role role;
  if (!hub::ParseRole(f.role, &role) || role == hub::Role::kAgent) {
    return ReportError("hub user add",
                       core::InvalidArgument("--role: expected viewer, analyst or admin, got \"" +
                                             f.role + "\""));
  }
  if (!hub::ValidUserName(f.name)) {
    return ReportError("hub user add",
                       core::InvalidArgument("NAME: expected 1..64 bytes of [A-Za-z0-9._@-]"));
  }
  auto path = UsersFile(f);
  if (!path.has_value()) return ReportError("hub user add", path.error());
  auto pw = ReadPassword(f);
  if (!pw.has_value()) return ReportError("hub user add", pw.error());
  auto hash = hub::HashPassword(*pw);
  if (!hash.has_value()) return ReportError("hub user add", hash.error());
  if (auto s = hub::AddUser(*path, {f.name, role, *hash}); !s.ok()) {
    return ReportError("hub user add", s);
  }
  std::printf("vigil hub user add: %s (%s) added to %s\n", f.name.c_str(), f.role.c_str(),
              path->c_str());
  return kExitOk;
}

int RunUserList(const UserFlags& f) {
  auto path = UsersFile(f);
  if (!path.has_value()) return ReportError("hub user list", path.error());
  std::vector<hub::UserEntry> users;
  auto loaded = hub::LoadUsers(*path);
  if (loaded.has_value()) {
    users = std::move(loaded).value();
  } else if (loaded.error().code() != core::StatusCode::kNotFound) {
    return ReportError("hub user list", loaded.error());
  }
  if (f.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& u : users) list.push_back({{"name", u.name}, {"role", hub::RoleName(u.role)}});
    std::printf("%s\n", nlohmann::json{{"users", list}}.dump().c_str());
  } else {
    for (const auto& u : users) {
      std::printf("%s %s\n", u.name.c_str(), std::string(hub::RoleName(u.role)).c_str());
    }
  }
  return kExitOk;
}

int RunUserRemove(const UserFlags& f) {
  auto path = UsersFile(f);
  if (!path.has_value()) return ReportError("hub user remove", path.error());
  if (auto s = hub::RemoveUser(*path, f.name); !s.ok()) return ReportError("hub user remove", s);
  std::printf("vigil hub user remove: %s removed from %s\n", f.name.c_str(), path->c_str());
  return kExitOk;
}

}  // namespace

RunFn AddHubUserCommands(CLI::App* hub) {
  auto f = std::make_shared<UserFlags>();
  CLI::App* user = hub->add_subcommand(
      "user", "Manage the people who log in to the hub (the users file: name, role, argon2id "
              "hash; default <state_dir>/users). The hub audits every change.");
  user->require_subcommand(1);
  auto common = [&](CLI::App* cmd) {
    cmd->add_option("--config", f->config, "Hub configuration (its auth.users names the file)");
    cmd->add_option("--state-dir", f->state_dir,
                    "The hub's state folder (overrides the config's state_dir)");
  };
  CLI::App* add = user->add_subcommand(
      "add", "Add a user; the password is read from --password-file or one line of stdin (at "
             "least 12 bytes)");
  common(add);
  add->add_option("name", f->name, "The user name (1..64 of [A-Za-z0-9._@-])")->required();
  add->add_option("--role", f->role, "viewer, analyst or admin")->required();
  add->add_option("--password-file", f->password_file, "File whose first line is the password");
  CLI::App* list = user->add_subcommand("list", "List the users and their roles");
  common(list);
  list->add_flag("--json", f->json, "Print {\"users\":[{\"name\",\"role\"}]}");
  CLI::App* remove = user->add_subcommand("remove", "Remove a user");
  common(remove);
  remove->add_option("name", f->name, "The user name")->required();
  for (CLI::App* leaf : {user, add, list, remove}) {
    leaf->footer("Exit codes: 0 done, 2 bad input (a short password, an unknown role, a name "
                 "not in the file, a malformed users file), 1 otherwise (e.g. the name is taken).");
  }
  return [f, add, list, remove] {
    if (add->parsed()) return RunUserAdd(*f);
    if (list->parsed()) return RunUserList(*f);
    if (remove->parsed()) return RunUserRemove(*f);
    return -1;
  };
}

}  // namespace vigil::app
