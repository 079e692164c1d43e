#include "likelihood/ode/per_sample_solver.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/numeric/odeint/stepper/runge_kutta_dopri5.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta_fehlberg78.hpp>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "flowlik/error.h"
#include "likelihood/model/torch_error.h"
#include "likelihood/ode/tensor_state.h"

namespace flowlik {
namespace odeint = boost::numeric::odeint;

namespace {

using State = torch::Tensor;  // [R, D + K] float64, as augmented_state() makes it
using Algebra = odeint::vector_space_algebra;

// Every network call of a solve takes the same number of rows, the block (the last block padded
// with its last row repeated): a row's value must not depend on how many rows share its call, and
// the matrix products of a network round a row differently with another number of rows beside it.
// Measured on the digits MLP in float32: MKL's sgemm on an AVX2 CPU for 1 to 3 rows against 4 or
// more; on an AVX-512 CPU 4 rows against 8 (so the earlier padding to a multiple of 4 did not
// suffice; nor does padding to a multiple of 8: 8, 16 and 24 rows all round differently). The block
// depends on the model and on the size of the whole run, never on the batch, the shard or the
// order (VelocityField::rows_per_call): for a TorchScript module the power of two from 1 to 32 rows
// that makes about 8192 values per call. Small models get blocks of 32 (the digits, the 2-D
// mixture: with blocks of 8, calls cost the mixture 2.5x and the digits 7% of their time); large
// ones small blocks (3x32x32: 4 rows; 3x64x64: 1). A package compiled for static sizes chooses its
// own by the model's cost per row, often fewer rows for a large network. A run too small to fill a
// block takes a smaller one (run_block). The batch is rounded up to whole blocks, so only the last
// rows of a dataset are padded.
int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// Whether t1 lies before t2 in the direction of dt, by more than a double's epsilon: Odeint's own
// test for a step that overshoots the end and for an integration that has finished.
bool before_in_direction(double t1, double t2, double dt) {
  const double eps = std::numeric_limits<double>::epsilon();
  return dt > 0 ? t2 - t1 > eps : t1 - t2 > eps;
}

// Odeint's default_error_checker gives up on a step after this many rejections in a row
// (failed_step_checker); so does a row here.
constexpr int kMaxRejections = 500;

// The raw dynamics f(t, y) = [v, tr J] of some rows, each at its own time, or [v, 0]
// (velocity_only: the state's alone, for a Gauss-Legendre solve, whose trace columns change only by
// its quadrature). Rows on which the model throws are found by evaluating the rows of a failed call
// one at a time; they get a zero derivative and a failure message, and leave the solve after the
// step.
class RowDynamics {
 public:
  RowDynamics(const VelocityField& field, const TraceEstimator& trace)
      : field_(field), trace_(trace), block_(field.rows_per_call()) {}

  // y: [R, D + K]; t: [R] float64; probes: [K, R, D] or undefined; labels: [R] or undefined.
  // failures: one per row, set for a row the model threw on.
  int64_t block() const { return block_; }

  torch::Tensor operator()(const State& y, const torch::Tensor& t, const torch::Tensor& probes,
                           const torch::Tensor& labels, std::vector<std::string>& failures,
                           bool velocity_only = false) const {
    try {
      const int64_t rows = y.size(0);
      const int64_t padded = round_up(rows, block_);
      const auto ys = pad_rows(y, padded, 0);
      const auto ts = pad_rows(t, padded, 0);
      const auto ps = pad_rows(probes, padded, 1);
      const auto ls = pad_rows(labels, padded, 0);
      std::vector<torch::Tensor> blocks;
      for (int64_t first = 0; first < padded; first += block_) {
        auto block = [&](const torch::Tensor& v, int64_t dim) {
          return v.defined() ? v.narrow(dim, first, block_) : v;
        };
        blocks.push_back(velocity_only
                             ? velocity_derivative(block(ys, 0), block(ts, 0), block(ls, 0))
                             : augmented_derivative(field_, trace_, block(ys, 0), block(ts, 0),
                                                    block(ps, 1), block(ls, 0)));
      }
      return torch::cat(blocks, 0).narrow(0, 0, rows);
    } catch (
        const IntegrationError& e) {  // the model threw (VelocityField); anything else is a bug
      const int64_t rows = y.size(0);
      if (rows == 1) {
        failures[0] = e.what();
        return torch::zeros_like(y);
      }
      std::vector<torch::Tensor> parts;
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<std::string> one(1);
        parts.push_back((*this)(y.narrow(0, r, 1), t.narrow(0, r, 1),
                                probes.defined() ? probes.narrow(1, r, 1) : probes,
                                labels.defined() ? labels.narrow(0, r, 1) : labels, one,
                                velocity_only));
        if (!one[0].empty()) failures[r] = one[0];
      }
      return torch::cat(parts, 0);
    }
  }

 private:
  // [v, 0] for augmented states y [B, D + K]: the network's velocity alone.
  torch::Tensor velocity_derivative(const State& y, const torch::Tensor& t,
                                    const torch::Tensor& labels) const {
    const int64_t dim = field_.dim();
    const auto v =
        field_.evaluate(y.narrow(1, 0, dim).to(field_.dtype()), t, labels).to(torch::kFloat64);
    return torch::cat({v, torch::zeros({y.size(0), y.size(1) - dim}, v.options())}, 1);
  }

  // `value` with its last row (along `dim`) repeated up to `rows` rows.
  static torch::Tensor pad_rows(const torch::Tensor& value, int64_t rows, int64_t dim) {
    if (!value.defined()) return value;
    const int64_t have = value.size(dim);
    if (have == rows) return value;
    const auto last = value.narrow(dim, have - 1, 1);
    std::vector<int64_t> repeats(static_cast<size_t>(value.dim()), 1);
    repeats[static_cast<size_t>(dim)] = rows - have;
    return torch::cat({value, last.repeat(repeats)}, dim);
  }

  const VelocityField& field_;
  const TraceEstimator& trace_;
  int64_t block_;  // the field's rows per call
};

// The system Odeint steps: a unit step in s of dy/ds = h f(t + s h, y), h and t per row. `raw`
// keeps the last f evaluated, which for a first-same-as-last tableau is f at the end of the step.
struct RescaledSystem {
  const RowDynamics* dynamics;
  torch::Tensor t;       // [R] float64: each row's time at the start of the step
  torch::Tensor h;       // [R] float64: each row's step
  torch::Tensor h_rows;  // [R, 1] in the state's dtype and device
  torch::Tensor probes;
  torch::Tensor labels;
  std::vector<std::string>* failures;
  torch::Tensor* raw;
  int64_t* evaluations;
  bool velocity_only;  // a Gauss-Legendre solve: the stages evaluate the velocity alone

  void operator()(const State& y, State& dy, double s) const {
    *raw = (*dynamics)(y, t + s * h, probes, labels, *failures, velocity_only);
    ++*evaluations;
    dy = h_rows * *raw;
  }
};

// One trial step of a Runge-Kutta pair with an embedded error estimate. An open set chosen by name
// (--solver), hence the one virtual interface; each is an Odeint stepper.
class RowStepper {
 public:
  virtual ~RowStepper() = default;
  // A unit step of `system` from y, whose derivative there is g; writes y_new and the error
  // estimate.
  virtual void step(const RescaledSystem& system, const State& y, const State& g, State& y_new,
                    State& err) = 0;
  // The evaluations of one step beyond the first stage's derivative, which is given.
  virtual int evaluations_per_step() const = 0;
  // Whether the last evaluation of a step is f at the step's end (then the next step needs no new
  // one).
  virtual bool first_same_as_last() const = 0;
  virtual int stepper_order() const = 0;
  virtual int error_order() const = 0;
  // Whether state_at gives the state inside the last step (a dense output).
  virtual bool dense_output() const { return false; }
  // The state at s = theta in [0, 1] of the last unit step, from y (derivative g) to y_new.
  virtual void state_at(double theta, const State& y, const State& g, const State& y_new,
                        State& out) const {
    throw std::logic_error("solve_rows: this stepper has no dense output");
  }
};

class Dopri5Stepper final : public RowStepper {
 public:
  void step(const RescaledSystem& system, const State& y, const State& g, State& y_new,
            State& err) override {
    stepper_.do_step(system, y, g, 0.0, y_new, g_new_, 1.0, err);
  }
  int evaluations_per_step() const override { return 6; }
  bool first_same_as_last() const override { return true; }
  int stepper_order() const override { return 5; }
  int error_order() const override { return 4; }
  // Odeint's continuous extension of Dormand-Prince (fourth order, from the last step's stages).
  bool dense_output() const override { return true; }
  void state_at(double theta, const State& y, const State& g, const State& y_new,
                State& out) const override {
    stepper_.calc_state(theta, out, y, g, 0.0, y_new, g_new_, 1.0);
  }

 private:
  odeint::runge_kutta_dopri5<State, double, State, double, Algebra> stepper_;
  State g_new_;  // the derivative at the last step's end (its last stage)
};

// Any of Odeint's explicit_error_generic_rk steppers (Fehlberg 7(8)).
template <class Stepper>
class GenericStepper final : public RowStepper {
 public:
  GenericStepper(Stepper stepper, bool fsal, int stepper_order, int error_order)
      : stepper_(std::move(stepper)),
        fsal_(fsal),
        stepper_order_(stepper_order),
        error_order_(error_order) {}
  void step(const RescaledSystem& system, const State& y, const State& g, State& y_new,
            State& err) override {
    stepper_.do_step(system, y, g, 0.0, y_new, 1.0, err);
  }
  int evaluations_per_step() const override { return static_cast<int>(Stepper::stage_count) - 1; }
  bool first_same_as_last() const override { return fsal_; }
  int stepper_order() const override { return stepper_order_; }
  int error_order() const override { return error_order_; }

 private:
  Stepper stepper_;
  bool fsal_;
  int stepper_order_;
  int error_order_;
};

// An explicit Runge-Kutta pair given by its Butcher tableau, for the pairs Odeint does not ship
// (Odeint's explicit_error_generic_rk weighs the error for its own stage counts only: up to 6, and
// 13). The arithmetic is Odeint's, operation for operation, so a step gives the bits its generic
// stepper gave: stage i at y + sum_j a[i-1][j] k_j (from 1.0 * y, left to right), the step at y +
// sum_j b_j k_j, the error sum_j db_j k_j, on a unit step (the system is rescaled to the row's h).
struct Tableau {
  std::vector<std::vector<double>> a;  // a[i - 1]: stage i's weights on stages 0 .. i - 1
  std::vector<double> b;               // the solution's weights, one per stage
  std::vector<double> db;              // b - b_hat: the error estimate's weights
  std::vector<double> c;               // each stage's time in the step
  int order;
  int error_order;
  bool fsal;  // the last stage is f at the step's end (b's last weight is 0, a's last row is b)
};

class TableauStepper final : public RowStepper {
 public:
  explicit TableauStepper(Tableau tableau) : tableau_(std::move(tableau)) {}
  void step(const RescaledSystem& system, const State& y, const State& g, State& y_new,
            State& err) override {
    const size_t stages = tableau_.b.size();
    std::vector<State> k(stages);
    k[0] = g;
    for (size_t i = 1; i < stages; ++i) {
      State x = 1.0 * y;
      for (size_t j = 0; j < i; ++j) x = x + tableau_.a[i - 1][j] * k[j];
      system(x, k[i], tableau_.c[i]);
    }
    y_new = 1.0 * y;
    for (size_t j = 0; j < stages; ++j) y_new = y_new + tableau_.b[j] * k[j];
    err = tableau_.db[0] * k[0];
    for (size_t j = 1; j < stages; ++j) err = err + tableau_.db[j] * k[j];
  }
  int evaluations_per_step() const override { return static_cast<int>(tableau_.b.size()) - 1; }
  bool first_same_as_last() const override { return tableau_.fsal; }
  int stepper_order() const override { return tableau_.order; }
  int error_order() const override { return tableau_.error_order; }

 private:
  Tableau tableau_;
};

// b - b_hat, the weights of the error estimate.
std::vector<double> difference(const std::vector<double>& b, const std::vector<double>& b_hat) {
  std::vector<double> d(b.size());
  for (size_t i = 0; i < b.size(); ++i) d[i] = b[i] - b_hat[i];
  return d;
}

// Bogacki-Shampine 3(2), as torchdiffeq's bosh3: four evaluations, the last at the step's end (b4 =
// 0).
Tableau bosh3() {
  const std::vector<double> b = {2.0 / 9, 1.0 / 3, 4.0 / 9, 0.0};
  return Tableau{{{1.0 / 2}, {0.0, 3.0 / 4}, {2.0 / 9, 1.0 / 3, 4.0 / 9}},
                 b,
                 difference(b, {7.0 / 24, 1.0 / 4, 1.0 / 3, 1.0 / 8}),
                 {0.0, 1.0 / 2, 3.0 / 4, 1.0},
                 3,
                 2,
                 true};
}

// Tsitouras 5(4) (Comput. Math. Appl. 62 (2011) 770), seven evaluations, the last at the step's end
// (b7 = 0); coefficients to double precision as in Tsitouras' paper and diffrax's tableau.
Tableau tsit5() {
  const std::vector<std::vector<double>> a = {
      {0.161},
      {-0.008480655492356988544426874250230774675121177393430391537369234245294192976164141156943,
       0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569},
      {2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289,
       -6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366,
       4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077},
      {5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791,
       -11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589,
       7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753,
       -0.09249506636175524925650207933207191611349983406029535244034750452930469056411389539635},
      {5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748,
       -12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452,
       8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986,
       -0.07158497328140099722453054252582973869127213147363544882721139659546372402303777878835,
       -0.02826905039406838290900305721271224146717633626879770007617876201276764571291579142206},
      {0.09646076681806522951816731316512876333711995238157997181903319145764851595234062815396,
       0.01,
       0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509,
       1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331,
       -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677,
       2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841},
  };
  std::vector<double> b = a.back();
  b.push_back(0.0);
  // The embedded fourth-order weights b_hat.
  const std::vector<double> b_hat = {
      0.09468075576583945807478876255758922856117527357724631226139574065785592789071067303271,
      0.009183565540343253096776363936645313759813746240984095238905939532922955247253608687270,
      0.4877705284247615707855642599631228241516691959761363774365216240304071651579571959813,
      1.234297566930478985655109673884237654035539930748192848315425833500484878378061439761,
      -2.707712349983525454881109975059321670689605166938197378763992255714444407154902012702,
      1.866628418170587035753719399566211498666255505244122593996591602841258328965767580089,
      1.0 / 66};
  return Tableau{
      a,
      b,
      difference(b, b_hat),
      {0.0, 0.161, 0.327, 0.9,
       0.9800255409045096857298102862870245954942137979563024768854764293221195950761080302604, 1.0,
       1.0},
      5,
      4,
      true};
}

using Rkf78 = odeint::runge_kutta_fehlberg78<State, double, State, double, Algebra>;

std::unique_ptr<RowStepper> make_row_stepper(SolverKind kind) {
  switch (kind) {
    case SolverKind::kDopri5:
      return std::make_unique<Dopri5Stepper>();
    case SolverKind::kTsit5:
      return std::make_unique<TableauStepper>(tsit5());
    case SolverKind::kBosh3:
      return std::make_unique<TableauStepper>(bosh3());
    case SolverKind::kRkf78:
      return std::make_unique<GenericStepper<Rkf78>>(Rkf78(), false, 8, 7);
    default:
      break;
  }
  throw std::logic_error("solve_rows: " + to_string(kind) + " is not an adaptive solver");
}

// Odeint's default_step_adjuster, per row: shrink a rejected step by 0.9 err^(-1/(q-1)) but to no
// less than a fifth (q: the error estimate's order); grow an accepted one with err < 0.5 by 0.9
// err^(-1/p), at most 4.5 times (p: the stepper's order).
double decreased_step(double h, double err, int error_order) {
  const double factor = std::isfinite(err) ? 0.9 * std::pow(err, -1.0 / (error_order - 1)) : 0.0;
  return h * std::max(factor, 0.2);
}

double increased_step(double h, double err, int stepper_order) {
  if (err >= 0.5) return h;
  err = std::max(std::pow(5.0, -static_cast<double>(stepper_order)), err);
  return h * 0.9 * std::pow(err, -1.0 / stepper_order);
}

// One row in the solve; its tensors are the row's rows of the solver's batch tensors.
struct RowState {
  int64_t id = 0;
  double t = 0.0;
  double h = 0.0;
  int64_t nfe = 0;
  int rejections = 0;
  bool has_derivative = false;  // the batch's f holds f(t, y) for this row
  std::string failure;
};

class ContinuousSolve {
 public:
  ContinuousSolve(const VelocityField& field, const TraceEstimator& trace, const SolverSpec& spec,
                  int64_t batch_rows, const RowFeed& feed, const RowSink& sink)
      : field_(field),
        dynamics_(field, trace),
        spec_(spec),
        // Rows are solved in whole blocks (results do not depend on the batch, so rounding it up
        // changes nothing but the padding, which it removes).
        batch_rows_(round_up(std::max<int64_t>(batch_rows, 1), dynamics_.block())),
        feed_(feed),
        sink_(sink),
        stepper_(make_row_stepper(spec.kind)),
        gauss_(spec.quadrature == Quadrature::kGaussLegendre) {
    if (gauss_ && !stepper_->dense_output()) {
      throw std::logic_error("solve_rows: gauss-legendre quadrature needs a dense output, " +
                             to_string(spec.kind) + " has none");
    }
  }

  void run() {
    while (true) {
      refill();
      if (rows_.empty()) return;
      evaluate_missing_derivatives();
      check_budget();
      retire();
      if (rows_.empty()) continue;
      trial_step();
      retire();
    }
  }

 private:
  // The interval is the model's (its contract's, in flow time), never the caller's to restate.
  double start() const { return solve_start(field_.contract(), spec_.direction); }
  double end() const { return solve_end(field_.contract(), spec_.direction); }

  void refill() {
    if (exhausted_ || static_cast<int64_t>(rows_.size()) >= batch_rows_) return;
    auto fresh = feed_(batch_rows_ - static_cast<int64_t>(rows_.size()));
    const int64_t count = fresh.count();
    if (count == 0) {
      exhausted_ = true;
      return;
    }
    const int64_t estimates = trace_columns(fresh);
    const auto y = augmented_state(fresh.x, estimates);
    y_ = y_.defined() ? torch::cat({y_, y}, 0) : y;
    f_ = f_.defined() ? torch::cat({f_, torch::zeros_like(y)}, 0) : torch::zeros_like(y);
    if (fresh.probes.defined())
      probes_ = probes_.defined() ? torch::cat({probes_, fresh.probes}, 1) : fresh.probes;
    if (fresh.labels.defined())
      labels_ = labels_.defined() ? torch::cat({labels_, fresh.labels}, 0) : fresh.labels;
    // The first trial step; each row's controller grows or shrinks it from there.
    const double first_step = (end() - start()) / 100.0;
    for (int64_t i = 0; i < count; ++i) {
      RowState row;
      row.id = next_id_++;
      row.t = start();
      row.h = first_step;
      rows_.push_back(row);
    }
  }

  int64_t trace_columns(const SolveRows& fresh) {
    if (estimates_ < 0) estimates_ = fresh.probes.defined() ? fresh.probes.size(0) : 1;
    return estimates_;
  }

  torch::Tensor times(const std::vector<int64_t>& which) const {
    auto t = torch::empty({static_cast<int64_t>(which.size())}, torch::kFloat64);
    auto* p = t.data_ptr<double>();
    for (size_t i = 0; i < which.size(); ++i) p[i] = rows_[which[i]].t;
    return t;
  }

  torch::Tensor select_rows(const torch::Tensor& value, const std::vector<int64_t>& which,
                            int64_t dim) const {
    if (!value.defined()) return value;
    return value.index_select(dim, torch::tensor(which, torch::kInt64).to(value.device()));
  }

  // f(t, y) for the rows that lack it (new rows; accepted rows of a tableau that is not FSAL), in
  // one call.
  void evaluate_missing_derivatives() {
    std::vector<int64_t> missing;
    for (size_t i = 0; i < rows_.size(); ++i) {
      if (!rows_[i].has_derivative) missing.push_back(static_cast<int64_t>(i));
    }
    if (!missing.empty()) {
      std::vector<std::string> failures(missing.size());
      const auto f =
          dynamics_(select_rows(y_, missing, 0), times(missing), select_rows(probes_, missing, 1),
                    select_rows(labels_, missing, 0), failures, gauss_);
      f_.index_copy_(0, torch::tensor(missing, torch::kInt64).to(f_.device()), f);
      for (size_t j = 0; j < missing.size(); ++j) {
        auto& row = rows_[missing[j]];
        row.has_derivative = true;
        ++row.nfe;
        if (!failures[j].empty()) row.failure = failures[j];
      }
    }
    // A derivative that is not finite at an accepted point cannot be cured by a smaller step.
    const auto finite = f_.isfinite().all(1).cpu();
    const auto* ok = finite.data_ptr<bool>();
    for (size_t i = 0; i < rows_.size(); ++i) {
      if (!ok[i] && rows_[i].failure.empty()) {
        rows_[i].failure =
            fmt::format("the velocity or its trace is not finite at t = {}", rows_[i].t);
      }
    }
  }

  // A row whose next step would take it past spec.max_nfe evaluations fails before spending them.
  void check_budget() {
    for (auto& row : rows_) {
      const int64_t step_cost =
          stepper_->evaluations_per_step() + (gauss_ ? std::ssize(kGaussNodes) : 0);
      if (row.failure.empty() && row.nfe + step_cost > spec_.max_nfe) {
        row.failure =
            fmt::format("more than {} function evaluations (the solve's limit)", spec_.max_nfe);
      }
    }
  }

  void trial_step() {
    const auto rows = static_cast<int64_t>(rows_.size());
    auto t0 = torch::empty({rows}, torch::kFloat64);
    auto h = torch::empty({rows}, torch::kFloat64);
    for (int64_t i = 0; i < rows; ++i) {
      auto& row = rows_[i];
      // Odeint's integrate_adaptive: a step that would pass the end is cut to end there.
      if (before_in_direction(end(), row.t + row.h, row.h)) row.h = end() - row.t;
      t0.data_ptr<double>()[i] = row.t;
      h.data_ptr<double>()[i] = row.h;
    }
    std::vector<std::string> failures(rows);
    torch::Tensor raw;
    int64_t evaluations = 0;
    const auto h_rows = h.to(y_.options()).unsqueeze(1);  // [R, 1]
    const RescaledSystem system{&dynamics_, t0,        h,    h_rows,       probes_,
                                labels_,    &failures, &raw, &evaluations, gauss_};
    const auto g = h_rows * f_;
    State y_new;
    State err;
    stepper_->step(system, y_, g, y_new, err);
    // A Gauss-Legendre solve controls its steps on the state alone (the trace columns do not move
    // in a step; mixed is then rms over x).
    const int64_t controlled = gauss_ ? field_.dim() : y_.size(1);
    const auto part = [&](const State& s) { return s.narrow(1, 0, controlled); };
    const auto norm = gauss_ && spec_.norm == ErrorNorm::kMixed ? ErrorNorm::kRms : spec_.norm;
    const auto error = step_error(norm, spec_.rtol, spec_.atol, field_.dim(), part(err), part(y_),
                                  part(y_new), part(g));
    const auto* e = error.data_ptr<double>();
    auto accepted = torch::zeros({rows}, torch::kBool);
    auto* accept = accepted.data_ptr<bool>();
    bool any_accepted = false;
    for (int64_t i = 0; i < rows; ++i) {
      auto& row = rows_[i];
      row.nfe += evaluations;
      if (!failures[i].empty() && row.failure.empty()) row.failure = failures[i];
      if (!row.failure.empty()) continue;
      if (!(e[i] <= 1.0)) {
        row.h = decreased_step(row.h, e[i], stepper_->error_order());
        if (++row.rejections >= kMaxRejections) {
          row.failure =
              fmt::format("step size control failed at t = {}: {} steps rejected in a row", row.t,
                          kMaxRejections);
        }
        continue;
      }
      row.t += row.h;
      row.h = increased_step(row.h, e[i], stepper_->stepper_order());
      row.rejections = 0;
      row.has_derivative = stepper_->first_same_as_last();
      accept[i] = true;
      any_accepted = true;
    }
    if (!any_accepted) return;
    if (gauss_) integrate_trace(accepted, t0, h, g, y_new);
    const auto keep_new = accepted.to(y_.device()).unsqueeze(1);
    y_ = torch::where(keep_new, y_new, y_);
    if (stepper_->first_same_as_last()) f_ = torch::where(keep_new, raw, f_);
  }

  // Gauss-Legendre's three points on a unit step and their weights: polynomials of degree 5
  // integrate exactly (order 6, above dopri5's 5).
  static constexpr std::array<double, 3> kGaussNodes = {
      0.1127016653792583114820735,  // 1/2 - sqrt(15)/10
      0.5, 0.8872983346207416885179265};
  static constexpr std::array<double, 3> kGaussWeights = {5.0 / 18, 8.0 / 18, 5.0 / 18};

  // A Gauss-Legendre solve's accepted step of each `accepted` row, from t0 by h: the trace at the
  // step's Gauss-Legendre points, the state there from the stepper's dense output, all rows' points
  // in one call; their weighted sum times h added to the row's log-density change in y_new (whose
  // trace columns the step left as they were).
  void integrate_trace(const torch::Tensor& accepted, const torch::Tensor& t0,
                       const torch::Tensor& h, const State& g, State& y_new) {
    std::vector<int64_t> which;
    const auto* accept = accepted.data_ptr<bool>();
    for (int64_t i = 0; i < accepted.size(0); ++i) {
      if (accept[i]) which.push_back(i);
    }
    const auto count = static_cast<int64_t>(which.size());
    const int64_t nodes = std::ssize(kGaussNodes);
    const auto t_rows = select_rows(t0, which, 0);
    const auto h_rows = select_rows(h, which, 0);
    std::vector<torch::Tensor> ys, ts;
    for (const double node : kGaussNodes) {
      State x;
      stepper_->state_at(node, y_, g, y_new, x);
      ys.push_back(select_rows(x, which, 0));
      ts.push_back(t_rows + node * h_rows);
    }
    // Each row's probes and label, the same at its three points.
    const auto probes = select_rows(probes_, which, 1);
    const auto labels = select_rows(labels_, which, 0);
    std::vector<std::string> failures(static_cast<size_t>(nodes * count));
    const auto f = dynamics_(torch::cat(ys, 0), torch::cat(ts, 0),
                             probes.defined() ? probes.repeat({1, nodes, 1}) : probes,
                             labels.defined() ? labels.repeat({nodes}) : labels, failures);
    const int64_t dim = field_.dim();
    const auto trace = f.narrow(1, dim, f.size(1) - dim);  // [3 count, K], node by node
    const auto step = h_rows.to(y_.options()).unsqueeze(1);
    torch::Tensor change;
    for (int64_t j = 0; j < nodes; ++j) {
      const auto term = (kGaussWeights[j] * step) * trace.narrow(0, j * count, count);
      change = j == 0 ? term : change + term;
    }
    y_new.narrow(1, dim, y_new.size(1) - dim)
        .index_add_(0, torch::tensor(which, torch::kInt64).to(y_.device()), change);
    const auto finite = trace.isfinite().all(1).cpu();
    const auto* ok = finite.data_ptr<bool>();
    for (int64_t a = 0; a < count; ++a) {
      auto& row = rows_[which[a]];
      row.nfe += nodes;
      for (int64_t j = 0; j < nodes; ++j) {
        const auto at = static_cast<size_t>(j * count + a);
        if (!failures[at].empty() && row.failure.empty()) row.failure = failures[at];
        if (!ok[at] && row.failure.empty()) {
          row.failure =
              fmt::format("the trace is not finite at t = {}",
                          t_rows[a].item<double>() + kGaussNodes[j] * h_rows[a].item<double>());
        }
      }
    }
  }

  // Passes on the rows that reached the end or failed, and drops them from the batch.
  void retire() {
    std::vector<int64_t> keep;
    for (size_t i = 0; i < rows_.size(); ++i) {
      const auto& row = rows_[i];
      const bool finished = !before_in_direction(row.t, end(), row.h);
      if (row.failure.empty() && !finished) {
        keep.push_back(static_cast<int64_t>(i));
        continue;
      }
      RowSolution solution;
      solution.row = row.id;
      solution.nfe = row.nfe;
      solution.ok = row.failure.empty();
      solution.failure = row.failure;
      const auto y = y_[static_cast<int64_t>(i)];
      solution.x_prior = y.narrow(0, 0, field_.dim()).clone();
      solution.log_density_change = y.narrow(0, field_.dim(), y.size(0) - field_.dim()).clone();
      sink_(std::move(solution));
    }
    if (keep.size() == rows_.size()) return;
    std::vector<RowState> kept;
    for (const auto i : keep) kept.push_back(rows_[i]);
    rows_ = std::move(kept);
    if (rows_.empty()) {
      y_ = f_ = probes_ = labels_ = torch::Tensor();
      return;
    }
    y_ = select_rows(y_, keep, 0);
    f_ = select_rows(f_, keep, 0);
    probes_ = select_rows(probes_, keep, 1);
    labels_ = select_rows(labels_, keep, 0);
  }

  const VelocityField& field_;
  RowDynamics dynamics_;
  const SolverSpec& spec_;
  int64_t batch_rows_;
  const RowFeed& feed_;
  const RowSink& sink_;
  std::unique_ptr<RowStepper> stepper_;
  bool gauss_;  // Gauss-Legendre quadrature of the trace; else the augmented state
  int64_t estimates_ = -1;
  bool exhausted_ = false;
  int64_t next_id_ = 0;
  std::vector<RowState> rows_;
  torch::Tensor y_;       // [R, D + K]
  torch::Tensor f_;       // [R, D + K]: f(t, y) per row, where has_derivative
  torch::Tensor probes_;  // [K, R, D] or undefined
  torch::Tensor labels_;  // [R] or undefined
};

// sqrt(mean(v^2)) over columns [first, first + count) of each row.
torch::Tensor rms(const torch::Tensor& v, int64_t first, int64_t count) {
  return v.narrow(1, first, count).square().mean(1).sqrt();
}

}  // namespace

torch::Tensor step_error(ErrorNorm norm, double rtol, double atol, int64_t dim,
                         const torch::Tensor& err, const torch::Tensor& y_old,
                         const torch::Tensor& y_new, const torch::Tensor& g_old) {
  const auto e = err.to(torch::kFloat64).abs();
  const auto y0 = y_old.to(torch::kFloat64).abs();
  torch::Tensor result;
  switch (norm) {
    case ErrorNorm::kMax: {
      // Odeint's default_error_checker: |err| / (atol + rtol (|y| + |h f(t, y)|)), the largest
      // component.
      const auto scale = atol + rtol * (y0 + g_old.to(torch::kFloat64).abs());
      result = (e / scale).amax(1);
      break;
    }
    case ErrorNorm::kRms:
    case ErrorNorm::kMixed: {
      // torchdiffeq's tolerance, atol + rtol max(|y0|, |y1|), and a root mean square over the row
      // (rms) or over x and over the log-density columns apart, the larger of the two (mixed:
      // torchdiffeq's norm of the tuple (x, log p) that flow_matching integrates).
      const auto scale = atol + rtol * torch::maximum(y0, y_new.to(torch::kFloat64).abs());
      const auto ratio = e / scale;
      const int64_t columns = ratio.size(1);
      result = norm == ErrorNorm::kRms
                   ? rms(ratio, 0, columns)
                   : torch::maximum(rms(ratio, 0, dim), rms(ratio, dim, columns - dim));
      break;
    }
  }
  result = result.cpu().contiguous();
  return torch::where(result.isfinite(), result, std::numeric_limits<double>::infinity());
}

void solve_rows(const VelocityField& field, const TraceEstimator& trace, const SolverSpec& spec,
                int64_t batch_rows, const RowFeed& feed, const RowSink& sink) {
  ContinuousSolve(field, trace, spec, batch_rows, feed, sink).run();
}

}  // namespace flowlik
