# The "learn to sum a sequence with an RNN" tutorial, written for Flux 0.9 (Tracker era), ported to
# Flux 0.16. It trains an RNN(1 => 1, identity) on 1000 random integer sequences to output their sum,
# then shows why the default tanh activation cannot: its output never exceeds 1.
#
#     julia --project=. julia/tutorial.jl [epochs]      # epochs defaults to the tutorial's 50
#
# The data are made here, from a fixed seed; the Python side (fluxparity) makes its own data and runs
# the same training loop through julia/FluxParity.jl, whose helpers this script reuses.
#
# Porting notes: what changed since Flux 0.9. Each point was checked against the Flux source at tag
# v0.16.11 (and v0.9.0 for the old API); docs/julia-names.md gives file and line for every name.
#  1. `Flux.RNN(1, 1, x -> x)` is now `RNN(1 => 1, identity)`. `RNN(in, out, σ)` has no method any
#     more; only `RNNCell(in, out, σ)` survives, "very softly deprecated", with no warning (src/deprecations.jl).
#  2. `Recur` is gone and the layer keeps no state between calls: `model(x)` takes the whole sequence as
#     a `1 × len` matrix (features × time) and returns every hidden state, `1 × len`. The tutorial's
#     output, the state after the last step, is `model(x)[1, end]`.
#  3. The initial state is zeros, rebuilt on every call, and is not trained (in 0.9 it was a trainable
#     parameter, and the bias was glorot-initialised instead of zero).
#  4. `Flux.reset!(model)` is a deprecated no-op (there is no state to reset), so it is dropped.
#  5. `@epochs 50 ...` is gone: a plain `for epoch in 1:epochs` loop.
#  6. `Flux.params(model)` and the implicit-gradient `train!(loss, params, data, opt)` are deprecated
#     (Flux 0.16 errors when implicit `Params` meet an Optimisers.jl rule). Gradients are explicit:
#     `Flux.withgradient(m -> loss(m, x, y), model)`.
#  7. `ADAM()` is now `Adam()` from Optimisers.jl, and its state is explicit:
#     `opt_state = Flux.setup(Adam(), model)`, then `Flux.update!(opt_state, model, grads[1])`.
#  8. `train!(...; cb = throttle(evalcb, 10))`: `train!` now throws when given `cb`. The loop below
#     prints the test loss after each epoch instead.
#  9. Tracker's tracked arrays are gone: weights are plain arrays and the loss a plain number.
# 10. Recurrent cells do not convert Float64 input to their Float32 weights (Dense does): the whole
#     pass would silently run in Float64. The data are made Float32 here, like the weights.
# 11. The loss is `abs(ŷ - y)` with scalar `abs`, whose gradient at exactly 0 is 0 (Tracker gave ±1).
# 12. Inside the cell, Flux replaces `tanh` with `NNlib.tanh_fast`, a few ulp away from `tanh`.

include(joinpath(@__DIR__, "FluxParity.jl"))
using .FluxParity: FluxParity
using Flux: Flux, RNN, Adam
using Random: MersenneTwister

const N_TRAIN = 1000
const DATA_SEED = 2019
const MODEL_SEED = 7
const PROBES = [[1, 2, 3], [1, -2, 30], [1, 0, 30], [1, 1, 1]]

"""
    make_sequences(rng, n) -> (xs, ys)

`n` sequences of 2 to 7 integers from 1 to 10, each a `1 × len` Float32 matrix, and their sums.
"""
function make_sequences(rng, n::Integer)
    raw = [rand(rng, 1:10, rand(rng, 2:7)) for _ in 1:n]
    xs = [reshape(Float32.(s), 1, :) for s in raw]
    ys = Float32[sum(s) for s in raw]
    return xs, ys
end

as_input(sequence) = reshape(Float32.(sequence), 1, :)

"""
    train_tutorial_model(σ, epochs, train, test) -> model

The tutorial's training: Adam with default settings, one step per sample, in order, printing after
every epoch the sum of that epoch's step losses and the test-set loss (a sum over 2000 samples).
"""
function train_tutorial_model(σ, epochs::Integer, train, test)
    train_x, train_y = train
    test_x, test_y = test
    # Flux's default initialisers, drawn from a seeded generator so that runs repeat.
    rng = MersenneTwister(MODEL_SEED)
    init = Flux.glorot_uniform(rng)
    model = RNN(1 => 1, σ; init_kernel = init, init_recurrent_kernel = init)
    opt_state = Flux.setup(Adam(), model)

    println("model: ", model)
    train_before = round(FluxParity.loss_sum(model, train_x, train_y); digits = 1)
    test_before = round(FluxParity.loss_sum(model, test_x, test_y); digits = 1)
    println("train loss before: $train_before")
    println("test loss before:  $test_before")
    for epoch in 1:epochs
        train_loss = 0.0
        for (x, y) in zip(train_x, train_y)
            l, grads = Flux.withgradient(m -> FluxParity.loss(m, x, y), model)
            Flux.update!(opt_state, model, grads[1])
            train_loss += l
        end
        test_loss = FluxParity.loss_sum(model, test_x, test_y)
        train_loss, test_loss = round(train_loss; digits = 2), round(test_loss; digits = 2)
        println("epoch $epoch: train loss $train_loss, test loss $test_loss")
    end
    test_after = round(FluxParity.loss_sum(model, test_x, test_y); digits = 2)
    println("test loss after:   $test_after")
    return model
end

function show_predictions(model)
    for probe in PROBES
        prediction = round(FluxParity.predict(model, as_input(probe)); digits = 3)
        println("  $probe => $prediction   (sum $(sum(probe)))")
    end
    return nothing
end

function main(args)
    epochs = isempty(args) ? 50 : parse(Int, first(args))
    data_rng = MersenneTwister(DATA_SEED)
    train = make_sequences(data_rng, N_TRAIN)
    test = make_sequences(data_rng, 2 * N_TRAIN)

    println("== RNN(1 => 1, identity), ", epochs, " epochs")
    model = train_tutorial_model(identity, epochs, train, test)
    println("predictions:")
    show_predictions(model)

    println()
    println("== RNN(1 => 1, tanh): Flux's default activation")
    tanh_model = train_tutorial_model(tanh, epochs, train, test)
    println("predictions (tanh never exceeds 1, so every sum saturates at 1):")
    show_predictions(tanh_model)
    test_y = last(test)
    floor_loss = sum(Float64, test_y) - length(test_y)
    println("lowest test loss any output ≤ 1 can reach: sum(y) - n = ", floor_loss)
    return nothing
end

if abspath(PROGRAM_FILE) == @__FILE__
    main(ARGS)
end
