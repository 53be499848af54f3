// The test fixtures' loopback servers when their port is taken between the pick and the
// server's bind: the bad order is forced by holding the port with a listener of the test's own.

#include "loopback.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "../../integration/loopback_listener.h"
#include "test_util.h"

namespace vigil::pipeline::testing {
namespace {

using vigil::testing::LoopbackListener;

TEST(OwnsListenerTest, TellsTheListenersProcessFromOthers) {
  LoopbackListener held;
  ASSERT_NE(held.port(), 0);
  const auto port = static_cast<uint16_t>(held.port());
  EXPECT_TRUE(AcceptsOnLoopback(port));
  EXPECT_TRUE(OwnsListener(getpid(), port));
  EXPECT_FALSE(OwnsListener(getppid(), port));
  // A process that has exited (a pid no process has) owns nothing.
  EXPECT_FALSE(OwnsListener(0x3fffffff, port));
  uint16_t gone = 0;
  {
    LoopbackListener closed;
    ASSERT_NE(closed.port(), 0);
    gone = static_cast<uint16_t>(closed.port());
  }
  EXPECT_FALSE(OwnsListener(getpid(), gone));  // no longer listening
}

// Starts nats-server on a port this process holds: *why and *port as StartOnFreePort leaves
// them.
bool StartOnHeldPort(bool may_move, uint16_t* port, std::string* why) {
  LoopbackListener held;
  if (held.port() == 0) {
    *why = "no loopback listener";
    return false;
  }
  *port = static_cast<uint16_t>(held.port());
  TempDir dir;
  LoopbackServer server;
  auto args = [&](uint16_t p) {
    return std::vector<std::string>{"nats-server", "-a", "127.0.0.1", "-p", std::to_string(p),
                                    "-l",          dir.Join("log")};
  };
  const bool started = server.StartOnFreePort(args, port, may_move, "install nats-server", why);
  EXPECT_EQ(started, server.running());
  if (started) {
    EXPECT_TRUE(AcceptsOnLoopback(*port));
    EXPECT_NE(*port, held.port()) << "started on the port another process holds";
  }
  server.Signal(SIGTERM, 5000);
  return started;
}

// Before, the fixtures' server exited on the taken port and the fixture failed (or, had it not
// exited yet, the port's owner answered in its place and the fixture took it for the server).
TEST(LoopbackServerTest, MovesToAnotherPortWhenItsPortWasTaken) {
  uint16_t port = 0;
  std::string why;
  EXPECT_TRUE(StartOnHeldPort(/*may_move=*/true, &port, &why)) << why;
}

TEST(LoopbackServerTest, AFixedPortThatIsTakenIsAnError) {
  uint16_t port = 0;
  std::string why;
  EXPECT_FALSE(StartOnHeldPort(/*may_move=*/false, &port, &why));
  EXPECT_NE(why.find("exited at start"), std::string::npos) << why;
}

}  // namespace
}  // namespace vigil::pipeline::testing
