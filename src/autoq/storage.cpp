// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
//
// AutoQ study storage: in memory and SQLite.
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "heteroq/autoq/study.h"
#include "heteroq/errors.h"

namespace heteroq::autoq {

namespace {

constexpr const char* kFormat = "heteroq-autoq-study-1";

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool pid_alive(int64_t pid) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno == EPERM;
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

// The running trials whose worker is gone: on this host with a dead pid.
bool orphaned(const Trial& t, const std::string& host) {
  if (t.status != "running") return false;
  const auto colon = t.worker.find(':');
  const std::string h = colon == std::string::npos ? "" : t.worker.substr(0, colon);
  return h == host && !pid_alive(t.pid);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) {
    if (c == '"') o += '"';
    o += c;
  }
  return o + "\"";
}

std::string csv_num(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream o;
  o.precision(17);
  o << v;
  return o.str();
}

nlohmann::json num_json(double v) {
  return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
}

// ---------------------------------------------------------------------------------------------
class MemoryStorage final : public StudyStorage {
 public:
  void open(const std::string& study, const std::string& meta, bool overwrite) override {
    std::lock_guard<std::mutex> g(mu_);
    study_ = study;
    auto& s = studies_[study];
    if (!s.meta.empty() && s.meta != meta && !overwrite)
      throw InvalidArgument("autoq: study \"" + study +
                            "\" exists with another search space, goal or strategy; pass "
                            "overwrite=true to replace it");
    if (overwrite) s = Study{};
    s.meta = meta;
  }
  std::optional<Trial> claim(const std::string& worker,
                             const std::function<Decision(const std::vector<Trial>&)>& decide,
                             bool* wait) override {
    std::lock_guard<std::mutex> g(mu_);
    auto& s = cur();
    *wait = false;
    for (auto& t : s.trials)
      if (t.status == "pending") {
        mark(t, worker);
        return t;
      }
    const Decision d = decide(s.trials);
    if (d.kind == Decision::kWait) *wait = true;
    if (d.kind != Decision::kRun) return std::nullopt;
    Trial t = d.trial;
    t.number = static_cast<int64_t>(s.trials.size());
    mark(t, worker);
    s.trials.push_back(t);
    return t;
  }
  void finish(const Trial& trial) override {
    std::lock_guard<std::mutex> g(mu_);
    cur().trials.at(trial.number) = trial;
  }
  void release(int64_t number) override {
    std::lock_guard<std::mutex> g(mu_);
    auto& t = cur().trials.at(number);
    if (t.status == "running") t.status = "pending";
  }
  std::vector<Trial> trials() override {
    std::lock_guard<std::mutex> g(mu_);
    return cur().trials;
  }
  void set_attr(const std::string& key, const std::string& value) override {
    std::lock_guard<std::mutex> g(mu_);
    cur().attrs[key] = value;
  }
  std::optional<std::string> get_attr(const std::string& key) override {
    std::lock_guard<std::mutex> g(mu_);
    auto& a = cur().attrs;
    auto it = a.find(key);
    if (it == a.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> studies() override {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<std::string> out;
    for (const auto& [k, v] : studies_) out.push_back(k);
    return out;
  }

 private:
  struct Study {
    std::string meta;
    std::vector<Trial> trials;
    std::map<std::string, std::string> attrs;
  };
  Study& cur() {
    if (study_.empty()) throw InvalidArgument("autoq: the storage has no open study");
    return studies_[study_];
  }
  static void mark(Trial& t, const std::string& worker) {
    t.status = "running";
    t.worker = worker;
    t.pid = ::getpid();
    t.attempts += 1;
    t.started = now_s();
  }
  std::mutex mu_;
  std::string study_;
  std::map<std::string, Study> studies_;
};

// ---------------------------------------------------------------------------------------------
class SqliteStorage final : public StudyStorage {
 public:
  explicit SqliteStorage(const std::string& path) : path_(path) {
    if (path.empty()) throw InvalidArgument("autoq: the study file path is empty");
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw InvalidArgument("autoq: cannot open study file \"" + path + "\": " + msg);
    }
    sqlite3_busy_timeout(db_, 120000);
    try {
      exec("PRAGMA journal_mode=WAL");
      exec("PRAGMA synchronous=NORMAL");
      exec("BEGIN IMMEDIATE");
      exec("CREATE TABLE IF NOT EXISTS autoq_format(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      exec("CREATE TABLE IF NOT EXISTS autoq_studies(name TEXT PRIMARY KEY, meta TEXT NOT NULL)");
      exec(
          "CREATE TABLE IF NOT EXISTS autoq_attrs(study TEXT NOT NULL, key TEXT NOT NULL, value "
          "TEXT NOT NULL, "
          "PRIMARY KEY(study, key))");
      exec(
          "CREATE TABLE IF NOT EXISTS autoq_trials(study TEXT NOT NULL, number INTEGER NOT NULL, "
          "params TEXT NOT NULL, "
          "status TEXT NOT NULL, metric REAL, cost REAL, score REAL, epochs INTEGER, bracket "
          "INTEGER, rung INTEGER, "
          "parent INTEGER, worker TEXT, pid INTEGER, attempts INTEGER, started REAL, finished "
          "REAL, duration REAL, "
          "overhead REAL, error TEXT, user_attrs TEXT, PRIMARY KEY(study, number))");
      exec(std::string("INSERT OR IGNORE INTO autoq_format VALUES('format', '") + kFormat + "')");
      std::string fmt;
      query("SELECT value FROM autoq_format WHERE key='format'", {},
            [&](sqlite3_stmt* s) { fmt = text(s, 0); });
      if (fmt != kFormat) throw InvalidArgument("format \"" + fmt + "\"");
      exec("COMMIT");
    } catch (const std::exception& e) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      sqlite3_close(db_);
      db_ = nullptr;
      throw InvalidArgument(
          "autoq: \"" + path +
          "\" is not a readable AutoQ study file (corrupted, or not one): " + e.what());
    }
  }
  ~SqliteStorage() override {
    if (db_) sqlite3_close(db_);
  }

  void open(const std::string& study, const std::string& meta, bool overwrite) override {
    Tx tx(this);
    std::optional<std::string> old;
    query("SELECT meta FROM autoq_studies WHERE name=?", {study},
          [&](sqlite3_stmt* s) { old = text(s, 0); });
    if (old && *old != meta && !overwrite)
      throw InvalidArgument(
          "autoq: study \"" + study + "\" in \"" + path_ +
          "\" exists with another search space, goal or strategy; pass overwrite=true to replace "
          "it, or use another study name or file");
    if (overwrite) {
      run("DELETE FROM autoq_trials WHERE study=?", {study});
      run("DELETE FROM autoq_attrs WHERE study=?", {study});
    }
    run("INSERT OR REPLACE INTO autoq_studies VALUES(?, ?)", {study, meta});
    tx.commit();
    study_ = study;
  }

  std::optional<Trial> claim(const std::string& worker,
                             const std::function<Decision(const std::vector<Trial>&)>& decide,
                             bool* wait) override {
    Tx tx(this);
    *wait = false;
    std::vector<Trial> ts = load();
    const std::string host = host_name();
    for (auto& t : ts)
      if (orphaned(t, host)) {
        t.status = "pending";
        run("UPDATE autoq_trials SET status='pending' WHERE study=? AND number=?",
            {study_, std::to_string(t.number)});
      }
    for (auto& t : ts)
      if (t.status == "pending") {
        mark(t, worker);
        run("UPDATE autoq_trials SET status='running', worker=?, pid=?, attempts=?, started=? "
            "WHERE study=? AND "
            "number=?",
            {t.worker, std::to_string(t.pid), std::to_string(t.attempts), csv_num(t.started),
             study_, std::to_string(t.number)});
        tx.commit();
        return t;
      }
    const Decision d = decide(ts);
    if (d.kind == Decision::kWait) *wait = true;
    if (d.kind != Decision::kRun) {
      tx.commit();
      return std::nullopt;
    }
    Trial t = d.trial;
    t.number = ts.empty() ? 0 : ts.back().number + 1;
    mark(t, worker);
    write(t, true);
    tx.commit();
    return t;
  }

  void finish(const Trial& trial) override {
    Tx tx(this);
    write(trial, false);
    tx.commit();
  }
  void release(int64_t number) override {
    Tx tx(this);
    run("UPDATE autoq_trials SET status='pending' WHERE study=? AND number=? AND status='running'",
        {study_, std::to_string(number)});
    tx.commit();
  }
  std::vector<Trial> trials() override {
    Tx tx(this, false);
    auto t = load();
    tx.commit();
    return t;
  }
  void set_attr(const std::string& key, const std::string& value) override {
    Tx tx(this);
    run("INSERT OR REPLACE INTO autoq_attrs VALUES(?, ?, ?)", {need_study(), key, value});
    tx.commit();
  }
  std::optional<std::string> get_attr(const std::string& key) override {
    std::optional<std::string> v;
    query("SELECT value FROM autoq_attrs WHERE study=? AND key=?", {need_study(), key},
          [&](sqlite3_stmt* s) { v = text(s, 0); });
    return v;
  }
  std::vector<std::string> studies() override {
    std::vector<std::string> out;
    query("SELECT name FROM autoq_studies ORDER BY name", {},
          [&](sqlite3_stmt* s) { out.push_back(text(s, 0)); });
    return out;
  }

 private:
  struct Tx {
    Tx(SqliteStorage* s, bool write = true) : s_(s) {
      s_->exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
    }
    void commit() {
      s_->exec("COMMIT");
      done_ = true;
    }
    ~Tx() {
      if (!done_) sqlite3_exec(s_->db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    SqliteStorage* s_;
    bool done_ = false;
  };

  const std::string& need_study() const {
    if (study_.empty()) throw InvalidArgument("autoq: the storage has no open study");
    return study_;
  }
  static void mark(Trial& t, const std::string& worker) {
    t.status = "running";
    t.worker = worker;
    t.pid = ::getpid();
    t.attempts += 1;
    t.started = now_s();
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw InvalidArgument("autoq: study file \"" + path_ + "\": " + what + ": " +
                          sqlite3_errmsg(db_));
  }
  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "error";
      sqlite3_free(err);
      throw InvalidArgument("autoq: study file \"" + path_ + "\": " + sql.substr(0, 40) + ": " +
                            msg);
    }
  }
  // Binds text parameters (an empty text for a NaN number binds NULL).
  void query(const std::string& sql, const std::vector<std::string>& args,
             const std::function<void(sqlite3_stmt*)>& row) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) fail("prepare");
    for (size_t i = 0; i < args.size(); ++i)
      sqlite3_bind_text(st, static_cast<int>(i + 1), args[i].c_str(), -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      if (row) row(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) fail("query");
  }
  void run(const std::string& sql, const std::vector<std::string>& args) {
    query(sql, args, nullptr);
  }
  static std::string text(sqlite3_stmt* s, int c) {
    const unsigned char* t = sqlite3_column_text(s, c);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
  static double real(sqlite3_stmt* s, int c) {
    return sqlite3_column_type(s, c) == SQLITE_NULL ? std::nan("") : sqlite3_column_double(s, c);
  }
  std::vector<Trial> load() {
    std::vector<Trial> out;
    query(
        "SELECT number, params, status, metric, cost, score, epochs, bracket, rung, parent, "
        "worker, pid, attempts, "
        "started, finished, duration, overhead, error, user_attrs FROM autoq_trials WHERE study=? "
        "ORDER BY number",
        {need_study()}, [&](sqlite3_stmt* s) {
          Trial t;
          t.number = sqlite3_column_int64(s, 0);
          t.params = text(s, 1);
          t.status = text(s, 2);
          t.metric = real(s, 3);
          t.cost = real(s, 4);
          t.score = real(s, 5);
          t.epochs = sqlite3_column_int64(s, 6);
          t.bracket = sqlite3_column_int64(s, 7);
          t.rung = sqlite3_column_int64(s, 8);
          t.parent = sqlite3_column_int64(s, 9);
          t.worker = text(s, 10);
          t.pid = sqlite3_column_int64(s, 11);
          t.attempts = sqlite3_column_int64(s, 12);
          t.started = real(s, 13);
          t.finished = real(s, 14);
          t.duration = real(s, 15);
          t.overhead = real(s, 16);
          t.error = text(s, 17);
          t.user_attrs = text(s, 18);
          out.push_back(std::move(t));
        });
    return out;
  }
  void write(const Trial& t, bool insert) {
    const std::vector<std::string> v = {t.params,
                                        t.status,
                                        csv_num(t.metric),
                                        csv_num(t.cost),
                                        csv_num(t.score),
                                        std::to_string(t.epochs),
                                        std::to_string(t.bracket),
                                        std::to_string(t.rung),
                                        std::to_string(t.parent),
                                        t.worker,
                                        std::to_string(t.pid),
                                        std::to_string(t.attempts),
                                        csv_num(t.started),
                                        csv_num(t.finished),
                                        csv_num(t.duration),
                                        csv_num(t.overhead),
                                        t.error,
                                        t.user_attrs,
                                        need_study(),
                                        std::to_string(t.number)};
    // NULLIF turns the empty text of a NaN back into NULL; CAST stores numbers as numbers.
    const std::string cols =
        "params=?, status=?, metric=CAST(NULLIF(?,'') AS REAL), cost=CAST(NULLIF(?,'') AS REAL), "
        "score=CAST(NULLIF(?,'') AS REAL), epochs=CAST(? AS INTEGER), bracket=CAST(? AS INTEGER), "
        "rung=CAST(? AS INTEGER), parent=CAST(? AS INTEGER), worker=?, pid=CAST(? AS INTEGER), "
        "attempts=CAST(? AS INTEGER), started=CAST(NULLIF(?,'') AS REAL), "
        "finished=CAST(NULLIF(?,'') AS REAL), "
        "duration=CAST(NULLIF(?,'') AS REAL), overhead=CAST(NULLIF(?,'') AS REAL), error=?, "
        "user_attrs=?";
    if (insert)
      run("INSERT INTO autoq_trials(study, number, params, status) VALUES(?, CAST(? AS INTEGER), "
          "'', '')",
          {need_study(), std::to_string(t.number)});
    run("UPDATE autoq_trials SET " + cols + " WHERE study=? AND number=CAST(? AS INTEGER)", v);
  }

  std::string path_;
  sqlite3* db_ = nullptr;
  std::string study_;
};

}  // namespace

std::unique_ptr<StudyStorage> memory_storage() { return std::make_unique<MemoryStorage>(); }
std::unique_ptr<StudyStorage> sqlite_storage(const std::string& path) {
  return std::make_unique<SqliteStorage>(path);
}

std::string make_worker_id() {
  std::random_device rd;
  std::ostringstream o;
  o << host_name() << ":" << ::getpid() << ":" << std::hex
    << (static_cast<uint64_t>(rd()) << 32 | rd());
  return o.str();
}

std::string trials_to_csv(const std::vector<Trial>& trials) {
  std::ostringstream o;
  o << "number,status,metric,cost,score,epochs,bracket,rung,parent,attempts,started,finished,"
       "duration,overhead,"
       "worker,error,params,user_attrs\n";
  for (const auto& t : trials)
    o << t.number << "," << t.status << "," << csv_num(t.metric) << "," << csv_num(t.cost) << ","
      << csv_num(t.score) << "," << t.epochs << "," << t.bracket << "," << t.rung << "," << t.parent
      << "," << t.attempts << "," << csv_num(t.started) << "," << csv_num(t.finished) << ","
      << csv_num(t.duration) << "," << csv_num(t.overhead) << "," << csv_field(t.worker) << ","
      << csv_field(t.error) << "," << csv_field(t.params) << "," << csv_field(t.user_attrs) << "\n";
  return o.str();
}

std::string trials_to_json(const std::vector<Trial>& trials) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& t : trials) {
    nlohmann::json params, attrs;
    try {
      params = nlohmann::json::parse(t.params);
    } catch (...) {
      params = t.params;
    }
    try {
      attrs = nlohmann::json::parse(t.user_attrs.empty() ? "{}" : t.user_attrs);
    } catch (...) {
      attrs = t.user_attrs;
    }
    a.push_back({{"number", t.number},
                 {"status", t.status},
                 {"metric", num_json(t.metric)},
                 {"cost", num_json(t.cost)},
                 {"score", num_json(t.score)},
                 {"epochs", t.epochs},
                 {"bracket", t.bracket},
                 {"rung", t.rung},
                 {"parent", t.parent},
                 {"attempts", t.attempts},
                 {"started", num_json(t.started)},
                 {"finished", num_json(t.finished)},
                 {"duration", num_json(t.duration)},
                 {"overhead", num_json(t.overhead)},
                 {"worker", t.worker},
                 {"error", t.error},
                 {"params", params},
                 {"user_attrs", attrs}});
  }
  return a.dump(1);
}

}  // namespace heteroq::autoq
